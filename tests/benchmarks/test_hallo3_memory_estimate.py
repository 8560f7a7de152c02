"""The Hallo3 memory estimate on the tiny config: the real generator on meta, its bookkeeping and the modes' order."""

from __future__ import annotations

import pytest

from benchmarks.hallo3_memory_estimate import NETWORK_OF, PHASES, estimate, markdown

pytestmark = pytest.mark.slow  # the estimate runs every mode's generator on meta: about 15 s even at tiny size


@pytest.fixture(scope="module")
def tiny_result():
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.tiny_models import TINY_CONFIG
    from hallo_pipeline.hallo3.vae import VAEConfig

    config = Hallo3Config.from_dict(TINY_CONFIG)
    width = config.dit.text_hidden_size
    t5 = dict(vocab_size=40, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=1, num_heads=4,
              feed_forward_proj="gated-gelu")
    return config, estimate(config, VAEConfig.from_dict(TINY_CONFIG["vae"]), t5, offload_blocks=1,
                            segments=1)["modes"]


def test_every_mode_runs_every_phase_and_totals_add_up(tiny_result) -> None:
    _, runs = tiny_result
    assert {"all resident", "default", "fp8", "fp8 + offload 1", "tiled decode", "low-VRAM"} == set(runs)
    for run in runs.values():
        assert set(run["phases"]) == set(PHASES)
        for phase, row in run["phases"].items():
            assert row["total"] == row["weights"] + row["activations"] and row["activations"] > 0, phase
        assert run["peak"] == max(row["total"] for row in run["phases"].values())


def test_each_phase_holds_the_weights_of_its_network_only(tiny_result) -> None:
    _, runs = tiny_result
    for phase in PHASES:
        weights = runs["default"]["weights"]
        assert runs["default"]["phases"][phase]["weights"] == weights[NETWORK_OF[phase]], phase
        assert runs["all resident"]["phases"][phase]["weights"] == sum(weights.values()), phase


def test_the_modes_lower_what_they_promise(tiny_result) -> None:
    config, runs = tiny_result
    main = {mode: run["phases"]["main_dit"] for mode, run in runs.items()}
    assert runs["default"]["peak"] < runs["all resident"]["peak"]
    assert main["fp8"]["weights"] < main["default"]["weights"]
    assert runs["fp8 + offload 1"]["weights"]["main"] < runs["fp8"]["weights"]["main"]
    decode = {mode: run["phases"]["vae_decode"]["total"] for mode, run in runs.items()}
    assert decode["tiled decode"] < decode["default"] and decode["low-VRAM"] == decode["tiled decode"]
    # Only the main DiT changes with fp8 / streaming; the other phases are the default's.
    for phase in ("t5_encode", "vae_encode", "reference_bank"):
        assert runs["low-VRAM"]["phases"][phase] == runs["default"]["phases"][phase], phase
    dit = config.dit
    assert runs["default"]["kv_bytes"] == dit.num_layers * 2 * dit.tokens_per_frame * dit.hidden_size * 2  # bf16


def test_markdown_names_every_mode_and_phase(tiny_result) -> None:
    _, runs = tiny_result
    text = markdown({"modes": runs}, "python -m benchmarks.hallo3_memory_estimate", "tiny")
    for name in runs:
        assert f"| {name} |" in text, name
    for phase in PHASES:
        assert f"| {phase}: " in text, phase
