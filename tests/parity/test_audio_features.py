"""Parity case `audio_features`: wav2vec2 features framed for Hallo, stage by stage and end to end."""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import assert_matches, case

CASE = case("audio_features")
NAMES = CASE.names("expected.", "input.waveform")
pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def encoder(parity_path):
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")
    from hallo_pipeline.audio.features import AudioEncoder

    return AudioEncoder(parity_path / "models" / "wav2vec2", fps=CASE.settings["fps"])


@pytest.fixture(scope="module")
def outputs(encoder, tiny_net, parity_path) -> dict[str, torch.Tensor]:
    """Our outputs named like the fixture's: each stage fed with the fixture's previous stage, so a
    mismatch points at one stage; `encode` end to end gives the final tensors."""
    from hallo_pipeline.audio.io import load_audio, to_mono_16k

    s, t = CASE.settings, CASE.tensors
    waveform, rate = load_audio(parity_path / s["wav"])
    assert rate == s["sample_rate"]
    mono = to_mono_16k(waveform, rate)
    padded_frames = s["padded_seq_len"]
    cnn = encoder.cnn_features(t["expected.padded_input_values"][0].numpy())
    interpolated = encoder.interpolate(t["expected.cnn_features"], padded_frames)
    features = encoder.encode(waveform, rate, clip_length=s["clip_length"])
    assert (features.frames, features.padded_frames) == (s["seq_len"], padded_frames)
    assert torch.equal(features.waveform, torch.from_numpy(mono))
    clip = s["clip_length"]
    return {
        "input.waveform": torch.from_numpy(mono),
        "expected.input_values": torch.from_numpy(encoder.input_values(mono)),
        "expected.padded_input_values": _padded(encoder, mono, s),
        "expected.cnn_features": cnn,
        "expected.interpolated_features": interpolated,
        "expected.hidden_states": features.hidden_states,
        "expected.windowed_features": features.features,
        "expected.audioproj_clip0": tiny_net.audioproj(features.clip(0, clip)[None]),
        "stage.hidden_states": encoder.layer_outputs(t["expected.interpolated_features"]),
    }


def _padded(encoder, mono, settings) -> torch.Tensor:
    from hallo_pipeline.audio.features import frame_count, padded_frame_count

    frames = frame_count(mono.shape[0], settings["sample_rate"], settings["fps"])
    padded = padded_frame_count(frames, settings["clip_length"])
    pad = (padded - frames) * encoder.samples_per_frame
    assert pad == settings["pad_samples"] and encoder.samples_per_frame == settings["samples_per_frame"]
    return torch.from_numpy(encoder.input_values(mono, pad))[None]


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no audio_features case"))])
def test_audio_features(name: str, outputs: dict) -> None:
    assert name in outputs, f"audio_features: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], CASE.tensors[name], CASE.tolerance(name), f"audio_features {name}")


def test_audio_features_transformer_stage(outputs: dict) -> None:
    """The transformer alone, fed the fixture's interpolated features."""
    name = "expected.hidden_states"
    assert_matches(
        outputs["stage.hidden_states"], CASE.tensors[name], CASE.tolerance(name), f"audio_features stage {name}"
    )


def test_audio_features_cnn_geometry(encoder) -> None:
    from hallo_pipeline.audio.wav2vec import cnn_output_length

    samples = CASE.tensors["expected.padded_input_values"].shape[-1]
    assert cnn_output_length(encoder.model.feature_extractor, samples) == CASE.settings["cnn_frames"]
    assert encoder.layers == CASE.tensors["expected.hidden_states"].shape[1]
