"""benchmarks/hallo_fp8_drift.py: the full-size byte count and the drift table it writes."""

from __future__ import annotations

import json

import pytest
from torch import nn

from benchmarks.hallo_fp8_drift import main, weight_bytes
from tests.hallo_pipeline.hallo.tiny import tiny_config


def test_the_bytes_saved_are_half_of_each_converted_weight() -> None:
    """Counted independently of `store_fp8`: every converted fp16 weight keeps one byte per value and gains a
    4-byte scale; nothing else changes."""
    from hallo_pipeline.hallo.memory import fp8_targets
    from hallo_pipeline.hallo.models import HalloNet

    net = HalloNet(tiny_config())  # the full size on `meta` takes seconds to build; the count is the same code
    sizes = weight_bytes(net)
    whole = sizes["fp16"]["whole net.pth"]
    assert whole == 2 * sum(t.numel() for t in [*net.parameters(), *net.buffers()])
    for label, kinds in (("fp8 Linear only", (nn.Linear,)), ("fp8", (nn.Linear, nn.Conv2d))):
        targets = fp8_targets(net, kinds)
        saved = sum(layer.weight.numel() - 4 for _, _, layer in targets)
        assert sizes[label]["whole net.pth"] == whole - saved, label
    assert sizes["fp8"]["whole net.pth"] < sizes["fp8 Linear only"]["whole net.pth"] < whole


@pytest.mark.slow
def test_the_drift_table_is_written(parity_path, tmp_path) -> None:
    out = tmp_path / "drift"
    assert main(["--parity", str(parity_path), "--modes", "fp32,fp8", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    for case in ("denoise_step", "pipeline"):
        rows = result["cases"][case]
        # fp32 is the parity tests' own run: far inside what fp8 moves
        assert all(rows["fp32"][n]["rms_relative"] < 0.01 < rows["fp8"][n]["rms_relative"] for n in rows["fp8"])
    assert "| whole net.pth |" in out.with_suffix(".md").read_text()
