"""Parity case `denoise_step`: one guided denoising step of one clip against the release."""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import assert_matches, case

CASE = case("denoise_step")
NAMES = CASE.names("expected.", "debug.")
pytestmark = pytest.mark.parity


def run_denoise_step(net, tensors: dict, settings: dict) -> dict[str, torch.Tensor]:
    """Our outputs, named like the fixture's `expected.*` / `debug.*` tensors."""
    from hallo_pipeline.config import RegionWeights
    from hallo_pipeline.hallo.models import RegionMasks
    from hallo_pipeline.hallo.sampling.guided_step import encode_identity, guided_denoise_step, reference_layers

    levels = sorted(int(k.rsplit(".", 1)[1]) for k in tensors if k.startswith("input.full_mask."))
    masks = [
        RegionMasks(tensors[f"input.full_mask.{i}"], tensors[f"input.face_mask.{i}"], tensors[f"input.lip_mask.{i}"])
        for i in levels
    ]
    frames = tensors["input.noisy_latents"].shape[2]
    identity = encode_identity(net, tensors["input.face_embedding"], tensors["input.face_region"], masks)
    audio_tokens = net.audioproj(tensors["input.audio_features"])
    reference = reference_layers(net, tensors["input.ref_latents"], identity.face_tokens, frames)
    scale = settings["motion_scale"]
    weights = RegionWeights(pose=scale["pose_weight"], face=scale["face_weight"], lip=scale["lip_weight"])
    step = guided_denoise_step(
        net, tensors["input.noisy_latents"], tensors["input.timestep"], identity, audio_tokens, reference,
        settings["guidance_scale"], weights,
    )
    out = {
        "expected.noise_pred": step.guided,
        "expected.noise_pred_cond": step.cond,
        "expected.noise_pred_uncond": step.uncond,
        "debug.audioproj": audio_tokens,
        "debug.imageproj_uncond": identity.face_tokens[:1],
        "debug.imageproj_cond": identity.face_tokens[1:],
        "debug.ref_unet_encoder_hidden_states": identity.face_tokens,
        "debug.face_locator": identity.face_features.unsqueeze(2).expand(-1, -1, frames, -1, -1),
    }
    for name, layer in zip(net.reference_unet.transformer_block_names(), reference):
        rows = [layer.tokens.tokens[:1], layer.motion[0], layer.tokens.tokens[1:], layer.motion[1]]
        out[f"debug.ref_bank.{name}"] = torch.cat(rows)  # rows [r, m1, m2, r, m1, m2]
    return out


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
