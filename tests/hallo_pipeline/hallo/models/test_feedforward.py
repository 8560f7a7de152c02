"""The feed-forward's memory cap: slices of tokens give the same numbers as one pass."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.hallo.models.attention import FeedForward


@pytest.mark.parametrize("shape", [(2, 37, 16), (75, 16), (3, 4, 5, 16)])
def test_chunked_feedforward_equals_one_pass(shape) -> None:
    torch.manual_seed(0)
    ff = FeedForward(16, chunk_elements=None)
    x = torch.randn(*shape)
    whole = ff(x)
    ff.chunk_elements = 128 * 7  # 7 tokens per slice (128 projected values each): uneven last slice
    chunked = ff(x)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_chunking_bounds_the_largest_activation() -> None:
    from benchmarks.memory_estimate import DeviceMemoryModel

    with torch.device("meta"):
        ff = FeedForward(320).requires_grad_(False)  # no autograd graph holding the intermediates
    x = torch.empty(8, 4096, 320, device="meta")
    peaks = {}
    for cap in (None, 2**20):
        ff.chunk_elements = cap
        memory = DeviceMemoryModel()
        with memory:
            ff(x)
        peaks[cap] = memory.peak
    projected = 8 * 4096 * 2560 * 4  # the GEGLU projection of all tokens, fp32
    output = 8 * 4096 * 320 * 4
    assert peaks[None] >= projected + output
    assert peaks[2**20] <= output + 4 * 2**20 * 4  # the output plus about one slice's projection
