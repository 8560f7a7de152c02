"""The Hallo3 segment memory estimate on the tiny config: its bookkeeping and the ordering of the modes."""

from __future__ import annotations

import pytest

from benchmarks.hallo3_memory_estimate import (
    DIT_PHASES,
    MODES,
    NEEDS,
    PHASES,
    build_meta_models,
    estimate,
    layers_to_offload,
    markdown,
    measure_phases,
    mode_table,
    peak_of,
)


@pytest.fixture(scope="module")
def tiny_models():
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.tiny_models import TINY_CONFIG
    from hallo_pipeline.hallo3.vae import VAEConfig

    config = Hallo3Config.from_dict(TINY_CONFIG)
    width = config.dit.text_hidden_size
    t5 = dict(vocab_size=40, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=1, num_heads=4,
              feed_forward_proj="gated-gelu")
    return build_meta_models(config, VAEConfig.from_dict(TINY_CONFIG["vae"]), t5)


@pytest.fixture(scope="module")
def tiny_result(tiny_models):
    return estimate(tiny_models)


def test_every_mode_has_every_phase_and_totals_add_up(tiny_result) -> None:
    assert set(MODES) <= set(tiny_result["modes"])
    for rows in tiny_result["modes"].values():
        assert set(rows) == set(NEEDS)
        for row in rows.values():
            assert row["total"] == row["weights"] + row["carried"] + row["activations"]
    for phase in PHASES:
        assert tiny_result["phases"][phase]["peak"] > 0, phase  # each phase really ran and allocated


def test_each_phase_holds_at_least_the_weights_it_runs(tiny_models, tiny_result) -> None:
    weights = tiny_models.weights()
    for phase, rows in zip(PHASES, (tiny_result["modes"]["default"][p] for p in PHASES)):
        assert rows["total"] >= sum(weights[n] for n in NEEDS[phase]) + rows["activations"], phase
        assert tiny_result["modes"]["release"][phase]["total"] >= sum(weights.values()), phase


def test_the_modes_order_release_default_fp8(tiny_result) -> None:
    peaks = {mode: tiny_result["peaks"][mode]["bytes"] for mode in MODES}
    assert peaks["default"] < peaks["release"]
    assert peaks["fp8"] <= peaks["default"]
    for phase in DIT_PHASES:  # fp8 stores the main DiT's matrices in one byte, whatever it upcasts
        assert tiny_result["modes"]["fp8"][phase]["weights"] < tiny_result["modes"]["default"][phase]["weights"]
    assert tiny_result["weights_fp8_main"] < tiny_result["weights"]["main"]


def test_reference_kv_is_one_key_and_value_row_per_layer_and_frame_token(tiny_models, tiny_result) -> None:
    dit = tiny_models.config.dit
    element = next(tiny_models.nets.main.parameters()).element_size()
    assert tiny_result["kv_bytes"] == dit.num_layers * 2 * dit.tokens_per_frame * dit.hidden_size * element


def test_offloading_picks_the_fewest_layers_that_fit(tiny_models) -> None:
    phases = measure_phases(tiny_models)
    fp8_peak = peak_of(mode_table(tiny_models, phases)["fp8"], DIT_PHASES)[1]
    assert layers_to_offload(tiny_models, phases, fp8_peak) == 0
    n = layers_to_offload(tiny_models, phases, fp8_peak - 1)
    if n is not None:
        assert n > 0
        assert peak_of(mode_table(tiny_models, phases, n)[f"fp8+offload {n}"], DIT_PHASES)[1] <= fp8_peak - 1


def test_markdown_names_every_mode_and_phase(tiny_result) -> None:
    text = markdown(tiny_result, "python -m benchmarks.hallo3_memory_estimate", "tiny")
    for name in [*tiny_result["modes"], *PHASES]:
        assert f"| {name} |" in text, name
