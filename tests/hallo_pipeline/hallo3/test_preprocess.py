"""Hallo3's preprocessing rules on synthetic inputs (the release's values are checked by the parity case)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.boxes import SILHOUETTE_IDS
from hallo_pipeline.hallo3.noise import ReplayedNoise
from hallo_pipeline.hallo3.preprocess import (
    apply_face_mask,
    drop_motion_pixels,
    encode_audio,
    face_box_mask,
    fit_to_working_size,
    frames_to_uint8,
    motion_drop_map,
    prepare_portrait,
    rgb_to_tensor,
)

SIZE = (32, 48)  # a small working size of the release's 2:3 shape


def _landmarks(box, count=478):
    """Landmarks whose face oval spans `box` (x0, y0, x1, y1); the other points sit at its centre."""
    x0, y0, x1, y1 = box
    points = np.full((count, 2), ((x0 + x1) / 2, (y0 + y1) / 2))
    oval = list(SILHOUETTE_IDS)
    points[oval[0]] = (x0, y0)
    points[oval[1]] = (x1, y1)
    return points


def _random_image(height, width, seed=0):
    return torch.rand((1, 3, height, width), generator=torch.Generator().manual_seed(seed))


def test_rgb_to_tensor_scales_like_to_tensor():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    image = rgb_to_tensor(rgb)
    assert image.shape == (1, 3, 2, 3) and image.dtype == torch.float32
    assert torch.equal(image[0].permute(1, 2, 0), torch.from_numpy(rgb).float() / 255)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3))])
def test_rgb_to_tensor_refuses_other_pictures(bad):
    with pytest.raises(InputError, match="RGB"):
        rgb_to_tensor(bad)


def test_square_photo_is_resized_and_padded_left_and_right():
    image = _random_image(20, 20) * 1.5 - 0.25  # values outside [0, 1]: the square path clamps
    out = fit_to_working_size(image, SIZE)
    assert out.shape == (1, 3, *SIZE)
    pad = (SIZE[1] - SIZE[0]) // 2
    assert out[..., :pad].abs().max() == 0 and out[..., SIZE[0] + pad :].abs().max() == 0
    assert out.min() >= 0 and out.max() <= 1
    assert out[..., pad : pad + SIZE[0]].std() > 0.1


@pytest.mark.parametrize("hw", [(20, 30), (40, 60)])
def test_photo_of_the_working_shape_is_only_resized(hw):
    image = _random_image(*hw)
    out = fit_to_working_size(image, SIZE)
    expected = torch.nn.functional.interpolate(image, size=SIZE, mode="bicubic", antialias=True)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("hw, cropped_axis", [((18, 40), -1), ((50, 30), -2)])
def test_other_shapes_cover_the_working_size_and_are_centre_cropped(hw, cropped_axis):
    image = torch.zeros((1, 3, *hw))
    image[..., : hw[0] // 2, :] = 1.0  # top half white
    image[..., :, : hw[1] // 3] = 0.5  # left third grey
    out = fit_to_working_size(image, SIZE)
    assert out.shape == (1, 3, *SIZE)
    # the cropped axis loses equal amounts on both sides: the pattern stays centred on the other axis
    if cropped_axis == -1:  # wide: full height kept, the white half is the top half
        assert out[0, 0, SIZE[0] // 4, -1] > 0.9 and out[0, 0, 3 * SIZE[0] // 4, -1] < 0.1
    else:  # tall: full width kept, the grey third is the left third
        assert out[0, 0, -1, SIZE[1] // 6] == pytest.approx(0.5, abs=0.05)
        assert out[0, 0, -1, -1] < 0.1


def test_bicubic_overshoot_is_kept():
    image = torch.zeros((1, 3, 21, 40))
    image[..., ::2, ::2] = 1.0  # a hard pattern the bicubic kernel overshoots on
    out = fit_to_working_size(image, (40, 60))
    assert out.max() > 1 or out.min() < 0


@pytest.mark.parametrize(
    "bad", [torch.zeros(3, 8, 8), torch.zeros(1, 4, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "image.png"]
)
def test_bad_image_is_an_input_error(bad):
    with pytest.raises(InputError, match="image"):
        fit_to_working_size(bad, SIZE)


def test_portrait_working_size_is_refused():
    with pytest.raises(ValueError, match="landscape or square"):
        fit_to_working_size(_random_image(8, 8), (48, 32))


def test_face_box_mask_is_a_hard_rectangle():
    box, mask = face_box_mask(_landmarks((20, 30, 40, 60)), width=100, height=80, expand_ratio=1.2)
    x0, y0, x1, y1 = box
    assert (x1 - x0, y1 - y0) == (24, 36)  # (20 * 1.2, 30 * 1.2) about the same centre
    assert mask.shape == (80, 100) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[y0:y1, x0:x1] == 255).all() and mask.sum() == 255 * 24 * 36


def test_face_mask_is_applied_at_the_photo_resolution():
    image = _random_image(80, 100)
    box, mask = face_box_mask(_landmarks((20, 30, 40, 60)), 100, 80)
    masked = apply_face_mask(image, mask)
    x0, y0, x1, y1 = box
    assert torch.equal(masked[..., y0:y1, x0:x1], image[..., y0:y1, x0:x1])
    assert masked.sum() == masked[..., y0:y1, x0:x1].sum()
    with pytest.raises(ValueError, match="does not match"):
        apply_face_mask(image, mask[:-1])


def test_prepare_portrait():
    rgb = (np.random.default_rng(0).random((60, 60, 3)) * 255).astype(np.uint8)
    portrait = prepare_portrait(rgb, _landmarks((20, 20, 40, 40)), SIZE)
    assert portrait.square and portrait.working_size == SIZE
    image = rgb_to_tensor(rgb)
    torch.testing.assert_close(portrait.image, fit_to_working_size(image, SIZE) * 2 - 1)
    expected = fit_to_working_size(apply_face_mask(image, portrait.face_mask), SIZE) * 2 - 1
    torch.testing.assert_close(portrait.reference, expected)
    assert portrait.reference.min() >= -1 and portrait.image.min() >= -1
    assert not prepare_portrait(rgb[:50], _landmarks((20, 20, 40, 40)), SIZE).square


def test_motion_drop_shares_one_map_and_drops_at_or_below_the_rate():
    draw = torch.tensor([[0.05, 0.1, 0.5], [0.1000001, 0.9, 0.0]])
    frames = torch.full((1, 3, 2, 2, 3), -0.5)
    noise = ReplayedNoise([draw], ["rand"])
    out = drop_motion_pixels(frames, motion_drop_map(noise, (2, 3)), rate=0.1)
    keep = torch.tensor([[0, 0, 1], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(out, torch.where(keep, frames, torch.zeros(())))
    with pytest.raises(ValueError, match="does not match"):
        drop_motion_pixels(frames, draw.T)


def test_frames_to_uint8_truncates_and_crops_square_outputs():
    frames = torch.zeros((2, 3, 4, 8))
    frames[:, :, :, 2:6] = 0.999  # 254.7 -> 254, not 255
    frames[:, 0, 0, 0] = 1.5  # clamped to 255
    u8 = frames_to_uint8(frames)
    assert u8.shape == (2, 4, 8, 3) and u8.dtype == torch.uint8
    assert u8[0, 1, 3, 1] == 254 and u8[0, 0, 0, 0] == 255
    square = frames_to_uint8(frames, square=True)
    assert square.shape == (2, 4, 4, 3) and bool((square == 254).all())


def test_audio_is_padded_to_whole_49_frame_segments(tmp_path):
    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.testing.tiny_wav2vec2 import write_tiny_wav2vec2

    encoder = AudioEncoder(write_tiny_wav2vec2(tmp_path / "w2v", hidden_size=16, layers=3, conv_dim=8))
    samples = 60 * 640 + 100  # 61 frames of video -> two segments of 49
    wave = np.sin(np.arange(samples) / 7.0).astype(np.float32) * 0.3
    features = encode_audio(encoder, wave, 16000)
    assert (features.frames, features.padded_frames) == (61, 98)
    assert features.features.shape == (98, 5, 3, 16)
    # windows are clamped at both ends of the padded sequence
    assert torch.equal(features.features[0, :3], features.hidden_states[[0, 0, 0]])
    assert torch.equal(features.features[-1, 2:], features.hidden_states[[-1, -1, -1]])
