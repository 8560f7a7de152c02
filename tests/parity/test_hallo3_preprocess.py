"""Parity case `preprocess` (SPEC §9-§10): face box mask, geometry, motion-frame drop, the uint8 frames
written, and the audio chain with Hallo3's 49-frame segments. Also the `vae` case's pixel inputs, which are
the same portrait prepared end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case

CASE = hallo3_case("preprocess")
pytestmark = pytest.mark.parity


def _config(root) -> dict:
    return json.loads((root / "tiny_config.json").read_text())


def _size(root) -> tuple[int, int]:
    height, width = _config(root)["image_size"]
    return height, width


def _portrait(root) -> np.ndarray:
    from PIL import Image

    with Image.open(root / CASE.settings["image"]) as image:
        return np.asarray(image.convert("RGB"))


def _check(actual: torch.Tensor, name: str) -> None:
    assert_matches(actual, CASE.tensors[name], CASE.tolerance(name), name)


def test_face_box_mask(hallo3_parity_path):
    from hallo_pipeline.hallo3.preprocess import face_box_mask

    height, width = _portrait(hallo3_parity_path).shape[:2]
    box, mask = face_box_mask(
        CASE.tensors["input.landmarks"].numpy(), width, height, CASE.settings["face_expand_ratio"]
    )
    assert list(box) == CASE.settings["face_box_xyxy_end_exclusive"]
    _check(torch.from_numpy(mask), "expected.face_mask")


def test_portrait_geometry(hallo3_parity_path):
    from hallo_pipeline.hallo3.preprocess import apply_face_mask, face_box_mask, fit_to_working_size, rgb_to_tensor

    size = _size(hallo3_parity_path)
    rgb = _portrait(hallo3_parity_path)
    image = rgb_to_tensor(rgb)
    _, mask = face_box_mask(CASE.tensors["input.landmarks"].numpy(), rgb.shape[1], rgb.shape[0])
    _check(fit_to_working_size(image, size), "expected.image_resized")
    _check(fit_to_working_size(apply_face_mask(image, mask), size), "expected.ref_masked_resized")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("input.square_40", "expected.square_padded"),
        ("input.rect_45x80", "expected.rect_cover_crop"),
        ("input.rect_70x50", "expected.tall_cover_crop"),
    ],
)
def test_geometry_rules(hallo3_parity_path, source, expected):
    from hallo_pipeline.hallo3.preprocess import fit_to_working_size

    ours = fit_to_working_size(CASE.tensors[source], _size(hallo3_parity_path))
    _check(ours.reshape(CASE.tensors[expected].shape), expected)


def test_motion_drop(hallo3_parity_path):
    from hallo_pipeline.hallo3.preprocess import drop_motion_pixels, to_model_range

    image = to_model_range(CASE.tensors["expected.image_resized"])
    motion = image[:, :, None].expand(*CASE.tensors["expected.motion_dropped"].shape)  # (1, 3, 2, H, W)
    ours = drop_motion_pixels(motion, CASE.tensors["input.drop_rand"], CASE.settings["mask_rate"])
    _check(ours, "expected.motion_dropped")


def test_saved_frames(hallo3_parity_path):
    from hallo_pipeline.hallo3.preprocess import frames_to_uint8

    video = CASE.tensors["input.video_for_save"]  # (1, t, 3, H, W) in [0, 1]
    _check(frames_to_uint8(video[0], square=True), "expected.saved_frames_square_crop_u8")


def test_prepared_portrait_is_the_vae_input(hallo3_parity_path):
    """The whole chain (photo + landmarks -> the VAE's two pixel inputs in [-1, 1]) against `vae`."""
    from hallo_pipeline.hallo3.preprocess import prepare_portrait

    vae = hallo3_case("vae")
    rgb = _portrait(hallo3_parity_path)
    portrait = prepare_portrait(
        rgb, CASE.tensors["input.landmarks"].numpy(), _size(hallo3_parity_path), CASE.settings["face_expand_ratio"]
    )
    assert portrait.square == (rgb.shape[0] == rgb.shape[1])
    for ours, name in ((portrait.image, "input.image"), (portrait.reference, "input.ref_image_masked")):
        assert_matches(ours, vae.tensors[name], vae.tolerance(name), f"vae {name}")


@pytest.fixture(scope="module")
def audio_features(hallo3_parity_path):
    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.hallo3.preprocess import encode_audio

    encoder = AudioEncoder.from_models_dir(hallo3_parity_path / "models")
    audio = CASE.settings["audio"]
    return encoder, encode_audio(
        encoder,
        CASE.tensors["input.waveform"].numpy(),
        _config(hallo3_parity_path)["sample_rate"],
        segment_frames=audio["clip_length"],
    )


def test_audio_padding(hallo3_parity_path, audio_features):
    encoder, features = audio_features
    audio = CASE.settings["audio"]
    assert (features.frames, features.padded_frames) == (audio["seq_len"], audio["padded_seq_len"])
    values = encoder.input_values(CASE.tensors["input.waveform"].numpy(), audio["pad_samples"])
    assert audio["pad_samples"] == (features.padded_frames - features.frames) * encoder.samples_per_frame
    _check(torch.from_numpy(values)[None], "expected.padded_input_values")


def test_audio_features(hallo3_parity_path, audio_features):
    _, features = audio_features
    _check(features.hidden_states, "expected.hidden_states")
    _check(features.features, "expected.windowed")
