"""The benchmark script runs on the CPU in CI-sized time and writes a complete result."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # half a minute on 2 cores
def test_tiny_cpu_benchmark_writes_json_and_markdown(tmp_path) -> None:
    from benchmarks.run import main

    assert main(["--config", "tiny", "--device", "cpu", "--steps", "1", "--clips", "1",
                 "--out", str(tmp_path), "--name", "t"]) == 0
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["device_type"] == "cpu" and result["dtype"] == "fp32" and result["attention"] == "auto"
    assert result["command"].startswith("python benchmarks/run.py --config tiny")
    assert set(result["modes"]) == {"baseline", "default", "low_vram"}
    for mode in result["modes"].values():
        assert mode["frames"] == 16 and mode["seconds"] > 0
        assert mode["estimated_peak_gpu_gib"] > 0
    estimated = {name: mode["estimated_peak_gpu_gib"] for name, mode in result["modes"].items()}
    assert estimated["low_vram"] < estimated["default"]  # the offloaded VAE and ReferenceNet
    # FLOPs counted on the meta device: the cached ReferenceNet does 4 of the release's 6 rows per clip
    flops = result["flops"]
    assert flops["denoiser_forward"] > 0
    assert abs(flops["reference_per_clip_cached"] / flops["reference_release_order"] - 4 / 6) < 0.01
    assert 0 < result["denoiser_utilisation_of_measured_matmul_peak"] < 1
    assert ("| baseline |" in (tmp_path / "t.md").read_text()
            and "fp32, attention auto," in (tmp_path / "t.md").read_text())


def test_an_attention_kernel_that_cannot_run_stops_before_any_timing(tmp_path, capsys, monkeypatch) -> None:
    from benchmarks import run
    from benchmarks.run import main

    def build(*args, **kwargs):
        raise AssertionError("the models were built (and would be timed) before the attention kernel was checked")

    monkeypatch.setattr(run, "build", build)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "tiny", "--device", "cpu", "--attention", "sage", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "attention 'sage' runs only on a CUDA GPU, but the device is cpu" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_full_size_flop_count_matches_the_spec() -> None:
    """SPEC §12: ReferenceNet 4.8 TFLOP per clip (6 images); the release's denoiser forward 54.0 TFLOP.
    Ours does less (about 48.4): see benchmarks/README.md for where the difference goes."""
    from benchmarks.run import count_flops
    from hallo_pipeline.hallo.config import NetConfig

    flops = count_flops(NetConfig(), size=512, frames=16)
    assert abs(flops["reference_release_order"] / 1e12 - 4.8) < 0.05
    assert 45.0 < flops["denoiser_forward"] / 1e12 < 54.0
