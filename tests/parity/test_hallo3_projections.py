"""Parity case `projections` (Hallo3): FaceProj and AudioProj of the main DiT against the release."""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case
from tests.parity.hallo3_networks import Recorder, tiny_hallo3

CASE = hallo3_case("projections")
NAMES = CASE.names("expected.", "debug.")
pytestmark = pytest.mark.parity


def run_projections(main, tensors: dict) -> dict[str, torch.Tensor]:
    """Our outputs, named like the case's `expected.*` / `debug.*` tensors."""
    audio_proj = main.transformer.audio_proj
    with Recorder() as seen:
        seen.outputs("proj3", audio_proj.proj3)
        seen.inputs("conv_in", audio_proj.conv1)
        seen.outputs("conv_out", audio_proj.conv1)
        seen.inputs("norm_in", audio_proj.norm)
        audio = main.project_audio(tensors["input.audio_emb"])
    conv_calls = len(seen.seen["conv_in"])
    out = {
        "expected.face_tokens": main.project_face(tensors["input.face_emb"]),
        "expected.audio_tokens": audio,
        "expected.audio_tokens_uncond": main.project_audio(torch.zeros_like(tensors["input.audio_emb"])),
        "debug.audio_proj3": seen.seen["proj3"][0],
        "debug.audio_pre_norm": seen.seen["norm_in"][0][0],
    }
    for i in range(conv_calls):
        out[f"debug.conv1_call{i}_in"] = seen.seen["conv_in"][i][0]
        out[f"debug.conv1_call{i}_out"] = seen.seen["conv_out"][i]
    return out


@pytest.fixture(scope="module")
def outputs(hallo3_parity_path) -> dict:
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    with torch.no_grad():
        return run_projections(tiny_hallo3(hallo3_parity_path).main, CASE.tensors)


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no projections case"))])
def test_projections(name: str, outputs: dict) -> None:
    assert name in outputs, f"projections: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], CASE.tensors[name], CASE.tolerance(name), f"projections {name}")


def test_projections_apply_the_shared_conv_as_often_as_the_release(outputs: dict) -> None:
    calls = CASE.settings["conv1_calls_per_forward"]
    assert sum(name.startswith("debug.conv1_call") and name.endswith("_in") for name in outputs) == calls
