from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo3.noise import NoiseSource, ReplayedNoise, SeededNoise


def test_seeded_noise_is_torch_cpu_generator_stream():
    noise = SeededNoise(7)
    reference = torch.Generator("cpu").manual_seed(7)
    assert torch.equal(noise.rand((4, 5)), torch.rand((4, 5), generator=reference))
    assert torch.equal(noise.randn((2, 3)), torch.randn((2, 3), generator=reference))
    assert noise.draws == 2


def test_seeded_noise_is_float32_on_the_cpu_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        draw = SeededNoise(1).randn((3,))
    finally:
        torch.set_default_dtype(previous)
    assert draw.dtype == torch.float32 and draw.device.type == "cpu"


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", True])
def test_bad_seed_is_an_input_error(seed):
    with pytest.raises(InputError, match="seed"):
        SeededNoise(seed)


def test_both_sources_are_noise_sources():
    assert isinstance(SeededNoise(0), NoiseSource)
    assert isinstance(ReplayedNoise([]), NoiseSource)


def test_replayed_noise_hands_out_the_recording_in_order():
    draws = [torch.full((2,), float(i)) for i in range(3)]
    noise = ReplayedNoise(draws, ["randn", "rand", "randn_like"])
    assert torch.equal(noise.randn((2,)), draws[0])
    assert torch.equal(noise.rand((2,)), draws[1])
    assert noise.remaining == 1
    assert torch.equal(noise.randn((2,)), draws[2])
    with pytest.raises(RuntimeError, match="all 3 recorded draws are used"):
        noise.randn((2,))


def test_replayed_noise_refuses_a_draw_out_of_order():
    noise = ReplayedNoise([torch.zeros(2, 3), torch.zeros(4)], ["randn", "rand"])
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\)"):
        noise.randn((3, 2))
    with pytest.raises(RuntimeError, match="is a randn draw; a rand draw"):
        noise.rand((2, 3))
    assert noise.remaining == 2  # a refused draw is not consumed


def test_replayed_noise_needs_one_kind_per_draw():
    with pytest.raises(ValueError, match="2 kinds given for 1 draws"):
        ReplayedNoise([torch.zeros(1)], ["rand", "rand"])
