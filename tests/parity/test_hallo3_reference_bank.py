"""Parity case `reference_bank` (Hallo3): the reference DiT's per-layer bank at t = 0 and the bank's keys and
values through the main DiT's layers (SPEC §4.7)."""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case
from tests.parity.hallo3_networks import Recorder, tiny_hallo3

CASE = hallo3_case("reference_bank")
NAMES = CASE.names("expected.")
pytestmark = pytest.mark.parity


def run_reference_bank(nets, tensors: dict) -> dict[str, torch.Tensor]:
    """Our outputs, named like the case's `expected.*` tensors."""
    ref_latent, text = tensors["input.ref_latent"], tensors["input.text_uc"]
    bank, output = nets.reference.reference_bank(ref_latent, text, with_output=True)
    key_norms = nets.main.mixins.adaln_layer.key_layernorm_list
    with Recorder() as seen:
        for i, norm in enumerate(key_norms):
            seen.inputs(f"k_raw.{i}", norm)
        kv = nets.main.reference_kv(bank)
    out = {"expected.ref_output": output}
    for i, (rows, (k, v)) in enumerate(zip(bank, kv)):
        out[f"expected.bank.{i}"] = rows
        # The case stores one sample: (heads, R, head_dim).
        out[f"expected.ref_k.{i}"] = k[0]
        out[f"expected.ref_v.{i}"] = v[0]
        out[f"expected.ref_k_raw.{i}"] = seen.seen[f"k_raw.{i}"][0][0][0]
    return out


@pytest.fixture(scope="module")
def nets(hallo3_parity_path):
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    return tiny_hallo3(hallo3_parity_path)


@pytest.fixture(scope="module")
def outputs(nets) -> dict:
    with torch.no_grad():
        return run_reference_bank(nets, CASE.tensors)


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no reference_bank case"))])
def test_reference_bank(name: str, outputs: dict) -> None:
    assert name in outputs, f"reference_bank: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], CASE.tensors[name], CASE.tolerance(name), f"reference_bank {name}")


def test_reference_bank_covers_every_layer(nets) -> None:
    layers = len(nets.reference.transformer.layers)
    assert sorted(n for n in NAMES if n.startswith("expected.bank.")) == sorted(
        f"expected.bank.{i}" for i in range(layers)
    )


def test_bank_without_the_discarded_output_is_the_same(nets, outputs: dict) -> None:
    """The default pass stops at the last layer's bank rows; it must give the same bank."""
    with torch.no_grad():
        bank, output = nets.reference.reference_bank(CASE.tensors["input.ref_latent"])
    assert output is None
    for i, rows in enumerate(bank):
        torch.testing.assert_close(rows, outputs[f"expected.bank.{i}"], rtol=0, atol=0)


def test_timestep_is_zero_as_the_case_says() -> None:
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    assert CASE.settings["timestep"] == 0  # reference_bank hard-codes t = 0 (SPEC §4.7)
