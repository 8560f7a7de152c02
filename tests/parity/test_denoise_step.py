"""Parity case `denoise_step`: one guided denoising step of one clip against the release."""

from __future__ import annotations

import pytest

from hallo_pipeline.testing.hallo_cases import run_denoise_step
from tests.parity.conftest import assert_matches, case

CASE = case("denoise_step")
NAMES = CASE.names("expected.", "debug.")
pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def outputs(tiny_net):
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    return run_denoise_step(tiny_net, CASE.tensors, CASE.settings)


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no denoise_step case"))])
def test_denoise_step(name: str, outputs: dict) -> None:
    assert name in outputs, f"denoise_step: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], CASE.tensors[name], CASE.tolerance(name), f"denoise_step {name}")


def test_denoise_step_bank_order_matches_fixture(tiny_net) -> None:
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    assert tiny_net.reference_unet.transformer_block_names() == CASE.settings["bank_modules_sorted"]
