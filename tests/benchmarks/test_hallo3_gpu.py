"""The one-shot Hallo3 GPU benchmark, run at tiny size on the CPU; its full-size builders checked on meta."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import hallo3_gpu
from benchmarks.hallo3_memory_estimate import META, PHASES


def _run(tmp_path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "tiny"
    code = hallo3_gpu.main(["--config", "tiny", "--device", "cpu", "--steps", "1", "--out", str(out), *extra])
    return code, json.loads((tmp_path / "tiny.json").read_text()), (tmp_path / "tiny.md").read_text()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("hallo3_gpu"))


@pytest.mark.slow  # four modes of one 49-frame segment plus their meta estimates: ~15-25 s on one thread
def test_tiny_run_measures_every_phase_of_every_mode(tiny_run) -> None:
    code, result, _ = tiny_run
    setup = hallo3_gpu.make_setup("tiny")
    assert code == 0 and result["status"] == "done"
    expected = [m.name for k, m in hallo3_gpu.select_modes(hallo3_gpu.DEFAULT_MODES, setup.config.dit.num_layers,
                                                           None)]
    assert list(result["modes"]) == expected  # run order: default, tiled decode, fp8, low-VRAM
    stride = setup.config.dit.num_frames - setup.config.segment.n_motion_frame
    for name, run in result["modes"].items():
        assert run["status"] == "ok", (name, run.get("error"), run.get("traceback"))
        assert run["frames"] == stride, name
        assert list(run["phases"]) == list(PHASES), name
        for phase, row in run["phases"].items():
            assert row["status"] == "ok" and row["compute_s"] > 0, (name, phase)
            assert row["load_s"] >= 0 and row["unload_s"] >= 0, (name, phase)
            assert "peak_bytes" not in row, (name, phase)  # no CUDA allocator on the CPU
            assert result["estimate"][name][phase] > 0, (name, phase)
        main = run["phases"]["main_dit"]
        assert main["steps"] == 1 and main["s_per_step"] > 0 and main["step_s"] == [main["s_per_step"]], name
    assert result["build"]["weight_bytes"]["main"] > 0 and result["build"]["host_peak_gb"] > 0


@pytest.mark.slow
def test_tiny_markdown_has_the_command_and_a_row_per_phase(tiny_run) -> None:
    _, result, text = tiny_run
    assert f"`{result['command']}`" in text and "--config tiny" in result["command"]
    for name in result["modes"]:
        assert f"## {name}: ok" in text, name
    rows = [line for line in text.splitlines() if line.split(" ", 2)[1:2] and line.split(" ")[1] in PHASES]
    assert len(rows) == len(PHASES) * len(result["modes"])
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[5] == "n/a" and cells[7] == "n/a", row  # measured peak and ratio: not on the CPU
        assert float(cells[2]) > 0 and float(cells[6]) > 0, row  # compute seconds, estimated peak


def test_a_spent_budget_skips_every_mode_and_still_writes(tmp_path) -> None:
    code, result, text = _run(tmp_path, "--budget-s", "0", "--estimate", "none")
    assert code == 0 and result["status"].startswith("stopped: budget")
    assert result["modes"] and all(run["status"] == "skipped" and "budget" in run["error"]
                                   for run in result["modes"].values())
    assert all(f"## {name}: skipped" in text for name in result["modes"])


def test_a_budget_spent_within_a_mode_stops_it_at_the_next_step(tmp_path, monkeypatch) -> None:
    on_step = hallo3_gpu.TimedPlacement.on_step

    def late(self, *args):
        self.clock.stop_reason = "signal 15"  # what SIGTERM or the budget leave behind
        on_step(self, *args)

    monkeypatch.setattr(hallo3_gpu.TimedPlacement, "on_step", late)
    code, result, text = _run(tmp_path, "--estimate", "none")
    first, *rest = result["modes"].values()
    assert result["status"] == "stopped: signal 15" and first["status"] == "stopped"
    assert [r["status"] for r in first["phases"].values()] == ["ok", "ok", "ok", "stopped"]
    assert first["phases"]["main_dit"]["steps"] == 1  # the step was timed before the stop
    assert rest and all(r["status"] == "skipped" for r in rest)


@pytest.mark.slow  # two tiny modes run
def test_a_failing_mode_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch) -> None:
    from hallo_pipeline.hallo3.vae import Hallo3VAE

    decode = Hallo3VAE.decode

    def failing(self, latents, output_device=None, tiled=False):
        if tiled:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return decode(self, latents, output_device, tiled)

    monkeypatch.setattr(Hallo3VAE, "decode", failing)
    code, result, text = _run(tmp_path, "--modes", "tiled-decode,fp8", "--estimate", "none")
    failed, ok = result["modes"]["tiled decode"], result["modes"]["fp8"]
    assert code == 0 and failed["status"] == "error" and "injected" in failed["error"]
    assert [(p, r["status"]) for p, r in failed["phases"].items()] == [(p, "error" if p == "vae_decode" else "ok")
                                                                       for p in PHASES]
    assert ok["status"] == "ok" and [r["status"] for r in ok["phases"].values()] == ["ok"] * len(PHASES)
    assert "## tiled decode: error (OutOfMemoryError" in text and "| vae_decode (error) |" in text


def test_full_size_networks_on_meta_hold_the_estimates_weights_in_every_mode() -> None:
    """The script's own builders at the released sizes (no data), and its conversions of the main DiT from mode to
    mode in run order, against the committed estimate's weights per mode."""
    committed = json.loads(hallo3_gpu.COMMITTED_ESTIMATE.read_text())["modes"]
    setup = hallo3_gpu.make_setup("full")
    models = hallo3_gpu.Models(setup, META, torch.bfloat16)
    assert models.weight_bytes() == committed["default"]["weights"]
    selected = hallo3_gpu.select_modes(",".join(hallo3_gpu.MODE_KEYS), setup.config.dit.num_layers, None)
    assert [k for k, _ in selected] == list(hallo3_gpu.RUN_ORDER)
    for _, mode in selected:
        models.prepare_main(mode)
        assert models.weight_bytes()["main"] == committed[mode.name]["weights"]["main"], mode.name
    assert models.rebuilds == 1  # only fp8 + offload N after low-VRAM's 21 streamed layers needs a fresh main DiT


def test_main_state_converts_in_place_only_forward() -> None:
    state = hallo3_gpu.MainState
    assert state().reachable(state(fp8=True)) and state().reachable(state(fp8=False, offload_blocks=3))
    assert state(fp8=True).reachable(state(fp8=True, offload_blocks=3))
    assert not state(fp8=True).reachable(state())  # fp8 cannot be undone
    assert not state(fp8=True, offload_blocks=3).reachable(state(fp8=True, offload_blocks=5))


def test_random_weights_are_finite_tied_and_scaled() -> None:
    setup = hallo3_gpu.make_setup("tiny")
    models = hallo3_gpu.Models(setup, torch.device("cpu"), torch.float32)
    t5 = models.t5.model
    assert t5.shared.weight is t5.encoder.embed_tokens.weight
    for name, module in models.modules().items():
        for key, p in [*module.named_parameters(), *module.named_buffers()]:
            assert p.device.type == "cpu" and torch.isfinite(p.float()).all(), (name, key)
    from hallo_pipeline.hallo3.rope import rope_tables

    cos, _ = rope_tables(setup.config.dit)
    assert torch.equal(models.nets.main.mixins.pos_embed.freqs_cos, cos)
    big = max((p for p in models.nets.main.parameters() if p.ndim == 2), key=lambda p: p.numel())
    assert abs(big.std().item() * big.shape[1] ** 0.5 - 1) < 0.1  # N(0, 1/fan_in)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(SystemExit):
        hallo3_gpu.main(["--config", "tiny", "--device", "cpu", "--modes", "default,turbo"])
