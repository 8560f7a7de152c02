"""Parity case `pipeline`, preprocessing part: the `input.*` tensors and the wav2vec2 hidden states,
reproduced from the case's source image and driving audio with our entry points.

The landmarks are the `masks` case's (mediapipe's output for the same portrait); identity comes
from generated stand-in face models, as the case's embedding is a stub anyway.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.parity.conftest import assert_matches, case

CASE = case("pipeline")
LANDMARKS_CASE = case("masks")
FACE_NAMES = CASE.names(
    "input.ref_image", "input.face_region", "input.full_mask.", "input.face_mask.", "input.lip_mask."
)
AUDIO_NAMES = CASE.names("debug.wav2vec_hidden_states", "input.audio_features")
pytestmark = pytest.mark.parity


def _require_cases() -> None:
    for c in (CASE, LANDMARKS_CASE):
        if not c.present:
            pytest.skip(f"case files {c.name}.json/.safetensors not in {c.root}")


@pytest.fixture(scope="module")
def face_outputs(parity_path, tmp_path_factory) -> dict[str, torch.Tensor]:
    _require_cases()
    pytest.importorskip("onnx")
    pytest.importorskip("insightface")
    from hallo_pipeline.hallo.face_analysis import analyze_face
    from hallo_pipeline.testing.tiny_face_models import write_tiny_face_models

    models = tmp_path_factory.mktemp("hallo_models")
    write_tiny_face_models(models / "face_analysis" / "models")
    s = CASE.settings
    analysis = analyze_face(
        parity_path / s["source_image"],
        models,
        image_size=s["image_size"],
        face_expand_ratio=s["face_expand_ratio"],
        landmarks=LANDMARKS_CASE.tensors["input.landmarks"].numpy(),
        allow_missing_identity=True,  # the stand-in detector sees no face in a real photo
        framing="stretch",  # the release resizes the whole photo to a square
    )
    out = {"input.ref_image": analysis.reference_image, "input.face_region": analysis.face_region}
    for level, masks in enumerate(analysis.masks):
        out[f"input.full_mask.{level}"] = masks.full
        out[f"input.face_mask.{level}"] = masks.face
        out[f"input.lip_mask.{level}"] = masks.lip
    return out


@pytest.fixture(scope="module")
def audio_outputs(parity_path) -> dict[str, torch.Tensor]:
    _require_cases()
    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.audio.io import load_audio
    from hallo_pipeline.config import FPS

    s = CASE.settings
    fps = json.loads((parity_path / "tiny_config.json").read_text()).get("fps", FPS)
    assert fps == FPS, f"the fixture set was made at {fps} fps; the Hallo weights (and this code) run at {FPS}"
    encoder = AudioEncoder(parity_path / "models" / "wav2vec2")
    waveform, rate = load_audio(parity_path / s["driving_audio"])
    features = encoder.encode(waveform, rate, clip_length=s["clip_length"])
    assert (features.frames, features.padded_frames) == (s["audio_length_frames"], s["padded_frames"])
    return {"debug.wav2vec_hidden_states": features.hidden_states, "input.audio_features": features.features}


@pytest.mark.parametrize("name", FACE_NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no pipeline case"))])
def test_pipeline_face_inputs(name: str, face_outputs: dict) -> None:
    assert name in face_outputs, f"pipeline: {name!r} is not produced by this test"
    assert_matches(face_outputs[name], CASE.tensors[name], CASE.tolerance(name), f"pipeline {name}")


@pytest.mark.parametrize("name", AUDIO_NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no pipeline case"))])
def test_pipeline_audio_inputs(name: str, audio_outputs: dict) -> None:
    assert_matches(audio_outputs[name], CASE.tensors[name], CASE.tolerance(name), f"pipeline {name}")
