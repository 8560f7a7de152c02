"""Parity case `dit_step` (Hallo3): one CFG evaluation of the main DiT at two steps of the 50-step table, with
layer 0's intermediates so that a mismatch shows where it starts (SPEC §4, §8).

The snapped c_skip / c_out are read from the case (the sampler computes them; not this test's subject).
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case
from tests.parity.hallo3_networks import Recorder, tiny_hallo3

CASE = hallo3_case("dit_step")
NAMES = CASE.names(*(f"t{k}." for k in range(10)))
pytestmark = pytest.mark.parity


def cfg_inputs(main, tensors: dict) -> dict:
    """The [uncond, cond] batch the release builds (SPEC §8): text zeros | T5, audio zeros before AudioProj |
    features; latents, concat, face and bank the same in both halves."""
    layers = len(main.transformer.layers)
    audio = tensors["input.audio_emb"]
    face = tensors["input.face_emb"]
    return {
        "latent": tensors["input.x_noisy"].expand(2, -1, -1, -1, -1),
        "concat": tensors["input.concat"].expand(2, -1, -1, -1, -1),
        "text": torch.cat([tensors["input.text_uc"], tensors["input.text_c"]]),
        "face_tokens": main.project_face(face.expand(2, -1)),
        "audio_tokens": main.project_audio(torch.cat([torch.zeros_like(audio), audio])),
        "reference": main.reference_kv([tensors[f"input.bank.{i}"] for i in range(layers)]),
    }


def run_evaluation(main, inputs: dict, evaluation: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One evaluation; names without the `t{k}.` prefix."""
    first, last = main.transformer.layers[0], main.transformer.layers[-1]
    with Recorder() as seen:
        seen.outputs("time_emb", main.time_embed)
        seen.inputs("l0_input", first)
        seen.outputs("l0_self_attn_out", first.attention.dense)
        seen.inputs("l0_after_self_attn", first.face_input_layernorm)
        seen.outputs("l0_face_attn_out", first.face_attn)
        seen.inputs("l0_after_face_attn", first.audio_input_layernorm)
        seen.outputs("l0_audio_attn_out", first.audio_attn)
        seen.inputs("l0_post_attention_norm", first.post_attention_layernorm)
        seen.outputs("l0_output", first)
        seen.outputs("last_output", last)
        timestep = torch.full((2,), evaluation["timestep_fed"])
        v = main(timestep=timestep, **inputs)
    s = seen.seen
    c_skip, c_out, g = evaluation["c_skip"], evaluation["c_out"], evaluation["guidance"]
    x0 = c_skip * x + c_out * v
    last_text, last_video, _ = s["last_output"][0]
    first_text, first_video, _ = s["l0_output"][0]
    return {
        "expected.model_output_uc": v[:1],
        "expected.model_output_c": v[1:],
        "expected.denoised_uc": x0[:1],
        "expected.denoised_c": x0[1:],
        "expected.denoised_guided": x0[:1] + g * (x0[1:] - x0[:1]),
        "debug.time_emb": s["time_emb"][0],
        "debug.l0_input_text": s["l0_input"][0][0],
        "debug.l0_input_video": s["l0_input"][0][1],
        "debug.l0_after_self_attn": s["l0_after_self_attn"][0][0],
        "debug.l0_face_attn_out": s["l0_face_attn_out"][0],
        "debug.l0_after_face_attn": s["l0_after_face_attn"][0][0],
        "debug.l0_audio_attn_out": s["l0_audio_attn_out"][0],
        # The layer normalises the video rows first, then the text rows (see DiTLayer.forward).
        "debug.l0_after_audio_attn": s["l0_post_attention_norm"][0][0],
        "debug.l0_output_text": first_text,
        "debug.l0_output_video": first_video,
        "debug.face_tokens": inputs["face_tokens"],
        "debug.audio_tokens": inputs["audio_tokens"],
        # final_layernorm is row-wise and the head drops the text rows, so ours normalises only the video rows;
        # its full input is the last layer's [text ; video].
        "debug.final_layernorm_input": torch.cat([last_text, last_video], dim=1),
        # The bank's query rows are never computed (their outputs are discarded, SPEC §4.7): the text and video
        # rows of `attention.dense`'s output are compared.
        "debug.l0_self_attn_out": s["l0_self_attn_out"][0],
    }


@pytest.fixture(scope="module")
def outputs(hallo3_parity_path) -> dict:
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    main = tiny_hallo3(hallo3_parity_path).main
    tensors = CASE.tensors
    out = {}
    with torch.no_grad():
        inputs = cfg_inputs(main, tensors)
        for evaluation in CASE.settings["evaluations"]:
            results = run_evaluation(main, inputs, evaluation, tensors["input.x_noisy"])
            out.update({evaluation["prefix"] + name: value for name, value in results.items()})
    return out


def _expected(name: str) -> torch.Tensor:
    expected = CASE.tensors[name]
    if name.endswith("debug.l0_self_attn_out"):
        bank_rows = CASE.tensors["input.bank.0"].shape[1]
        expected = expected[:, : expected.shape[1] - bank_rows]
    return expected


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no dit_step case"))])
def test_dit_step(name: str, outputs: dict) -> None:
    assert name in outputs, f"dit_step: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], _expected(name), CASE.tolerance(name), f"dit_step {name}")


def test_dit_step_covers_both_evaluations(outputs: dict) -> None:
    prefixes = [e["prefix"] for e in CASE.settings["evaluations"]]
    assert len(prefixes) >= 2
    for prefix in prefixes:
        assert f"{prefix}expected.model_output_c" in NAMES
