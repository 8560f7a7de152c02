"""Hallo3's face analysis and framing (`hallo3/face.py`) on synthetic photos with known face boxes: no face models
(landmarks and embedding are given, or a stand-in finder records what it was asked)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.framing import crop_to_size, frame_face, landmarks_in_crop
from hallo_pipeline.hallo3.face import CUT_LIMIT, Hallo3Face, analyze_face, cut_size, working_aspect
from hallo_pipeline.hallo3.preprocess import prepare_portrait, working_coordinates
from tests.hallo_pipeline.hallo3.test_preprocess import _landmarks
from tests.hallo_pipeline.hallo3.tiny import TINY

SIZE = tuple(TINY.segment.image_size)  # (H, W) of the tiny config
EMBEDDING = np.arange(TINY.face_proj.clip_embeddings_dim, dtype=np.float32)


def _smooth_photo(width: int, height: int) -> np.ndarray:
    """Slow colour waves in 40..200: resampling down to a small working size and back barely changes them."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [120 + 80 * np.sin(x / 61 + k) * np.cos(y / 53 - k) for k in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def _analyze(rgb, box, framing="crop", **options) -> Hallo3Face:
    return analyze_face(None, rgb, TINY, framing, landmarks=_landmarks(box), face_embedding=EMBEDDING, **options)


class _Finder:
    """Stands in for `FaceFinder`: fixed landmarks, records the images and options it was given."""

    def __init__(self, landmarks):
        self.landmarks, self.calls = landmarks, []
        self.identity_encoder = self

    def find_landmarks(self, rgb, multiple_faces="error"):
        self.calls.append(("landmarks", rgb.shape, multiple_faces))
        return self.landmarks

    def embedding(self, rgb, multiple_faces="error", allow_missing=False):
        self.calls.append(("embedding", rgb.shape, multiple_faces, allow_missing))
        return EMBEDDING


PHOTOS = {  # photo (width, height), the face box in it
    "portrait-3x4": ((600, 800), (240, 300, 360, 440)),
    "landscape-16x9": ((1280, 720), (700, 200, 820, 340)),
    "square": ((700, 700), (300, 250, 420, 390)),
    "3x4-close-up": ((300, 400), (80, 120, 220, 280)),  # the 3:2 rectangle is wider than the photo
}


@pytest.mark.parametrize("size, box", PHOTOS.values(), ids=PHOTOS.keys())
def test_crop_is_a_rectangle_of_the_working_aspect_given_to_the_releases_preprocessing(size, box) -> None:
    """The model sees the cut as the release sees a photo: `prepare_portrait` on it, landmarks moved into it."""
    rgb = _smooth_photo(*size)
    face = _analyze(rgb, box)
    framing = face.framing
    assert Fraction(framing.crop_width, framing.crop_height) == working_aspect(SIZE) == Fraction(SIZE[1], SIZE[0])
    assert framing == frame_face(_landmarks(box), *size, aspect=working_aspect(SIZE))  # default crop_scale 2.3
    assert min(framing.crop_size) == pytest.approx(2.3 * max(box[2] - box[0], box[3] - box[1]), abs=1)
    assert face.photo is rgb or np.array_equal(face.photo, rgb)
    cut = cut_size(framing, SIZE)
    expected = prepare_portrait(crop_to_size(rgb, framing, cut), landmarks_in_crop(_landmarks(box), framing, cut), SIZE)
    assert torch.equal(face.portrait.image, expected.image) and torch.equal(face.portrait.reference, expected.reference)
    assert face.portrait.face_box == expected.face_box and not face.portrait.square
    assert face.working_size == SIZE
    # The cut has the working aspect exactly, so the working image is the cut scaled: the landmarks follow.
    np.testing.assert_allclose(face.landmarks, landmarks_in_crop(_landmarks(box), framing, SIZE), atol=1e-9)
    assert torch.equal(face.embedding, torch.from_numpy(EMBEDDING))


@pytest.mark.parametrize("size, box", PHOTOS.values(), ids=PHOTOS.keys())
def test_crop_round_trip_gives_back_the_photo(size, box) -> None:
    """The model's own input as the 'generated' frames, pasted back: the photo exactly outside the crop, and
    close inside (two resamplings through the small working size, on a smooth photo)."""
    rgb = _smooth_photo(*size)
    face = _analyze(rgb, box)
    frames = face.video_frames((face.portrait.image + 1) / 2)
    assert frames.shape == (1, *SIZE, 3)
    out = face.paste_back(color_match=False).paste(frames[0])
    assert out.shape == rgb.shape
    if size == (300, 400):
        assert face.framing.padding[0] > 0 and face.framing.padding[2] > 0  # edge fill, never pasted back
    x0, y0, x1, y1 = face.framing.visible
    outside = np.ones(rgb.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], rgb[outside])
    error = np.abs(out[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1])
    assert error.mean() < 1 and error.max() <= 8  # truncation to uint8 and the 32 x 48 bottleneck
    # Only where the resampling kernel reached into the edge fill (the photo's last pixels repeated, not its
    # waves continued) is it more than a few levels off: away from a filled side, at most 3.
    left, top, right, bottom = (10 if pad else 0 for pad in face.framing.padding)
    assert error[top : error.shape[0] - bottom, left : error.shape[1] - right].max() <= 3


def test_stretch_is_the_releases_geometry_with_nothing_to_paste() -> None:
    rgb = _smooth_photo(640, 360)
    box = (300, 100, 380, 200)
    face = _analyze(rgb, box, framing="stretch")
    expected = prepare_portrait(rgb, _landmarks(box), SIZE)
    assert torch.equal(face.portrait.image, expected.image) and torch.equal(face.portrait.reference, expected.reference)
    assert face.framing is None
    np.testing.assert_allclose(face.landmarks, working_coordinates(_landmarks(box), 360, 640, SIZE))
    with pytest.raises(InputError, match="framing='stretch'") as error:
        face.paste_back()
    assert error.value.input == "framing"


def test_the_cut_is_capped_for_a_large_face() -> None:
    """A face filling a big photo: the rectangle (mostly edge fill) is cut at CUT_LIMIT x the working size."""
    box = (100, 100, 1900, 1900)
    face = _analyze(np.zeros((2000, 2000, 3), np.uint8), box)
    assert face.framing.crop_height > CUT_LIMIT * SIZE[0]
    assert cut_size(face.framing, SIZE) == (CUT_LIMIT * SIZE[0], CUT_LIMIT * SIZE[1])
    small = frame_face(_landmarks((10, 10, 15, 15)), 100, 100, aspect=working_aspect(SIZE))
    assert cut_size(small, SIZE) == small.crop_size  # the photo's own pixels


def test_one_detection_and_the_identity_of_the_cut() -> None:
    """The landmarks are found once, in the photo; the identity is taken from the cut; the options reach both."""
    box = (300, 250, 420, 390)
    finder = _Finder(_landmarks(box))
    face = analyze_face(finder, _smooth_photo(700, 700), TINY, multiple_faces="largest", allow_missing_identity=True)
    cut = cut_size(face.framing, SIZE)
    assert finder.calls == [("landmarks", (700, 700, 3), "largest"), ("embedding", (*cut, 3), "largest", True)]
    finder.calls.clear()
    analyze_face(finder, _smooth_photo(700, 700), TINY, "stretch")
    assert finder.calls == [("landmarks", (700, 700, 3), "error"), ("embedding", (700, 700, 3), "error", False)]


@pytest.mark.parametrize(
    "options, name",
    [
        ({"framing": "fit"}, "framing"),
        ({"crop_scale": 0.5}, "crop_scale"),
        ({"expand_ratio": 9.0}, "face_expand_ratio"),
        ({"multiple_faces": "all"}, None),
        ({"face_embedding": np.zeros(7, np.float32)}, "face_embedding"),
    ],
    ids=["framing", "crop-scale", "expand-ratio", "multiple-faces", "embedding-size"],
)
def test_bad_options_are_input_errors(options, name) -> None:
    options = {"landmarks": _landmarks((30, 30, 60, 60)), "face_embedding": EMBEDDING, **options}
    with pytest.raises(InputError) as error:
        analyze_face(None, _smooth_photo(100, 100), TINY, **options)
    assert error.value.input == name


def test_without_face_models_both_stand_ins_are_needed() -> None:
    with pytest.raises(InputError, match="landmarks and face_embedding"):
        analyze_face(None, _smooth_photo(100, 100), TINY, landmarks=_landmarks((30, 30, 60, 60)))


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (48, 72, [[0, 0], [48, 32]]),  # the working shape (32 x 48 x 1.5): scaled only
        (20, 20, [[8, 0], [40, 32]]),  # square: to 32 x 32, shifted right by (48 - 32) // 2 = 8
        (32, 96, [[-24, 0], [72, 32]]),  # wider: height to 32 (scale 1), centre crop 24 off the left
        (100, 48, [[0, -34], [48, 66]]),  # taller: width to 48 (scale 1), centre crop 34 off the top
    ],
    ids=["working-shape", "square", "wider", "taller"],
)
def test_working_coordinates_follow_the_releases_geometry(height, width, expected) -> None:
    """The photo's corners (0, 0) and (w, h), pixel edges, land where `fit_to_working_size` puts them."""
    corners = np.array([[0, 0], [width, height]], dtype=np.float64)
    np.testing.assert_allclose(working_coordinates(corners, height, width, SIZE), expected)
