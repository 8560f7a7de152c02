"""`analyze_face`, the pipeline's entry point: real mediapipe (the tiny folder's .task) + insightface over stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo.face_analysis import FaceAnalyzer, analyze_face, reference_tensor
from hallo_pipeline.hallo.masks import LEVEL_DIVISORS, face_region_tensor, region_maps, token_masks
from hallo_pipeline.testing.tiny_face_models import draw_face

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def portrait_with_marker(portrait) -> np.ndarray:
    """The portrait plus a square the stand-in detector takes for the face (away from the real one)."""
    return draw_face(portrait, 20, 420, 64)


@pytest.mark.parametrize("image_size", [128, 256])
def test_stretched_analysis_is_consistent(portrait_with_marker, analysis_models_dir, image_size: int) -> None:
    """framing="stretch", the release's way: everything at the photo's own size, then resized."""
    analysis = analyze_face(portrait_with_marker, analysis_models_dir, image_size=image_size, framing="stretch")
    s = image_size
    assert analysis.reference_image.shape == (3, s, s) and analysis.reference_image.dtype == torch.float32
    assert -1 <= float(analysis.reference_image.min()) and float(analysis.reference_image.max()) <= 1
    assert analysis.face_region.shape == (3, s, s)
    assert [m.full.shape[-1] for m in analysis.masks] == [(s // d) ** 2 for d in LEVEL_DIVISORS]
    assert analysis.embedding.shape == (512,) and analysis.embedding.abs().sum() > 0
    assert analysis.landmarks.shape == (478, 2)
    # The parts agree with the step functions applied to the landmarks found.
    height, width = portrait_with_marker.shape[:2]
    maps = region_maps(analysis.landmarks, width, height)
    assert analysis.face_box == maps.face_box and analysis.lip_box == maps.lip_box
    assert torch.equal(analysis.face_region, face_region_tensor(maps.face_mask, s))
    for ours, ref in zip(analysis.masks, token_masks(maps, s)):
        assert torch.equal(ours.full, ref.full) and torch.equal(ours.face, ref.face) and torch.equal(ours.lip, ref.lip)
    x0, y0, x1, y1 = analysis.face_box
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert analysis.framing is None and analysis.photo is None
    with pytest.raises(InputError, match="framing='stretch'.*no crop to paste back"):
        analysis.paste_back()


def test_non_square_rgba_image(portrait_with_marker, analysis_models_dir) -> None:
    """A non-square RGBA portrait: converted, masks computed at its own size, reference stretched."""
    tall = portrait_with_marker[:, 60:460]  # 512 x 400
    rgba = np.dstack([tall, np.full(tall.shape[:2], 255, np.uint8)])
    analysis = FaceAnalyzer(analysis_models_dir).analyze(rgba, image_size=128, framing="stretch")
    assert analysis.maps.face_mask.shape == tall.shape[:2]
    assert analysis.reference_image.shape == (3, 128, 128)


def test_given_landmarks_skip_mediapipe(monkeypatch, portrait_with_marker, analysis_models_dir) -> None:
    analyzer = FaceAnalyzer(analysis_models_dir)
    found = analyzer.analyze(portrait_with_marker, image_size=128, framing="stretch")
    shifted = found.landmarks + [5.0, 0.0]

    def no_mediapipe(*args, **kwargs):
        raise AssertionError("mediapipe ran although landmarks were given")

    monkeypatch.setattr(analyzer, "find_landmarks", no_mediapipe)
    again = analyzer.analyze(portrait_with_marker, image_size=128, landmarks=shifted, framing="stretch")
    assert np.array_equal(again.landmarks, shifted)
    with pytest.raises(InputError, match=r"landmarks must be a finite \(478, 2\)"):
        analyzer.analyze(portrait_with_marker, image_size=128, landmarks=shifted[:10])


def test_options_are_checked(portrait_with_marker, analysis_models_dir) -> None:
    analyzer = FaceAnalyzer(analysis_models_dir)
    with pytest.raises(InputError, match="image_size 500"):
        analyzer.analyze(portrait_with_marker, image_size=500)
    with pytest.raises(InputError, match="multiple_faces='all' is unknown"):
        analyzer.analyze(portrait_with_marker, multiple_faces="all")
    with pytest.raises(InputError, match="face_expand_ratio 0 is out of range: use 0.5 to 3"):
        analyzer.analyze(portrait_with_marker, face_expand_ratio=0)
    with pytest.raises(InputError, match="framing='square' is unknown; use 'crop'"):
        analyzer.analyze(portrait_with_marker, framing="square")
    with pytest.raises(InputError, match="crop_scale 0.5 is out of range"):
        analyzer.analyze(portrait_with_marker, crop_scale=0.5)


def test_missing_identity_is_an_error_unless_allowed(portrait, analysis_models_dir) -> None:
    analyzer = FaceAnalyzer(analysis_models_dir)
    with pytest.raises(InputError, match="found no face"):
        analyzer.analyze(portrait, image_size=128)  # no marker: the stand-in recogniser sees nothing
    analysis = analyzer.analyze(portrait, image_size=128, allow_missing_identity=True)
    assert not analysis.embedding.any()


# The face box (x0, y0, x1, y1) of the portrait's face-oval landmarks: where a face detector puts it.
PORTRAIT_FACE_BOX = (179.0, 71.0, 271.0, 177.0)


def _scaled_box(scale: float, dx: float, dy: float) -> list[float]:
    x0, y0, x1, y1 = PORTRAIT_FACE_BOX
    return [x0 * scale + dx, y0 * scale + dy, x1 * scale + dx, y1 * scale + dy]


def _resized(portrait: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(portrait).resize((side, side), Image.BILINEAR))


@pytest.fixture(scope="module")
def pair(portrait) -> tuple[np.ndarray, list[list[float]]]:
    """Two people side by side (the left one at 75 %) and where a face detector finds their faces.

    In the whole 1024x512 photo mediapipe's face detector (which looks at a 128x128 copy) sees no face."""
    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[64:448, 40:424] = _resized(portrait, 384)
    canvas[:, 512:] = portrait
    return canvas, [_scaled_box(0.75, 40, 64), _scaled_box(1.0, 512, 0)]


@pytest.fixture(scope="module")
def group(portrait) -> tuple[np.ndarray, list[list[float]]]:
    """A group photo: six people in two rows (768x512), each face about 50 pixels wide."""
    canvas = np.zeros((512, 768, 3), np.uint8)
    boxes = []
    for row in range(2):
        for col in range(3):
            canvas[row * 256 : (row + 1) * 256, col * 256 : (col + 1) * 256] = _resized(portrait, 256)
            boxes.append(_scaled_box(0.5, col * 256, row * 256))
    return canvas, boxes


def _detector_finds(monkeypatch, analyzer: FaceAnalyzer, boxes) -> None:
    """The stand-in detector only sees green squares; make it report the real faces, as SCRFD would."""
    monkeypatch.setattr(analyzer.identity_encoder, "face_boxes", lambda rgb: np.asarray(boxes, dtype=np.float64))


@pytest.mark.parametrize("photo, count", [("pair", 2), ("group", 6)])
def test_several_small_faces_are_counted_and_the_option_named(request, monkeypatch, analysis_models_dir, photo, count):
    image, boxes = request.getfixturevalue(photo)
    analyzer = FaceAnalyzer(analysis_models_dir)
    _detector_finds(monkeypatch, analyzer, boxes)
    with pytest.raises(InputError, match=rf"found {count} faces in image.*multiple_faces='largest'"):
        analyzer.analyze(image, image_size=128)


def test_largest_of_several_small_faces_gets_landmarks(monkeypatch, pair, portrait, analysis_models_dir) -> None:
    image, boxes = pair
    analyzer = FaceAnalyzer(analysis_models_dir)
    _detector_finds(monkeypatch, analyzer, boxes)
    analysis = analyzer.analyze(image, image_size=128, multiple_faces="largest", allow_missing_identity=True)
    # The right-hand person is the full-size portrait: its landmarks, shifted by 512 pixels.
    alone = analyzer.analyze(portrait, image_size=128, allow_missing_identity=True)
    assert np.median(np.abs(analysis.landmarks - (alone.landmarks + [512, 0]))) < 2.0


def test_no_face_for_either_model_says_so(analysis_models_dir) -> None:
    blank = np.full((256, 256, 3), 200, np.uint8)
    with pytest.raises(InputError, match=r"no face was found in image \(neither the landmark model nor the face det"):
        FaceAnalyzer(analysis_models_dir).analyze(blank, image_size=128)


def test_detector_face_without_landmarks_is_explained(monkeypatch, analysis_models_dir) -> None:
    blank = np.full((256, 256, 3), 200, np.uint8)
    analyzer = FaceAnalyzer(analysis_models_dir)
    _detector_finds(monkeypatch, analyzer, [[80, 80, 160, 170]])
    with pytest.raises(InputError, match=r"no face was found in image: the face detector saw 1 face \(box 80,80-160"):
        analyzer.analyze(blank, image_size=128)


def test_analysis_shows_no_third_party_future_warnings(portrait_with_marker, analysis_models_dir) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analysis = FaceAnalyzer(analysis_models_dir).analyze(portrait_with_marker, image_size=128, framing="stretch")
    assert analysis.embedding.abs().sum() > 0, "the identity model ran (where insightface used to warn)"
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []


def _photo(portrait: np.ndarray, shape: str) -> np.ndarray:
    """A 3:4 photo (the portrait, its edges repeated up and down) or a 16:9 one (a band across the face;
    a wider photo would shrink the face below what mediapipe's detector finds in a 128-pixel copy)."""
    if shape == "portrait-3x4":
        return np.pad(portrait, ((90, 81), (0, 0), (0, 0)), mode="edge")
    return np.ascontiguousarray(portrait[40:328])


@pytest.mark.parametrize("shape", ["portrait-3x4", "landscape-16x9"])
def test_cropped_analysis_is_made_on_the_square_around_the_face(monkeypatch, portrait, analysis_models_dir, shape):
    from hallo_pipeline.framing import crop_to_square, frame_face, landmarks_in_crop

    photo = _photo(portrait, shape)
    height, width = photo.shape[:2]
    analyzer = FaceAnalyzer(analysis_models_dir)
    given = []

    def identity(rgb, *args, **kwargs):
        given.append(rgb.copy())
        return np.ones(512, np.float32)

    monkeypatch.setattr(analyzer.identity_encoder, "embedding", identity)
    analysis = analyzer.analyze(photo, image_size=128)  # framing="crop" is the default
    framing = frame_face(analysis.landmarks, width, height)
    assert analysis.framing == framing and np.array_equal(analysis.photo, photo)
    crop = crop_to_square(photo, framing, 128)
    assert len(given) == 1 and np.array_equal(given[0], crop), "identity is computed on the crop"
    assert torch.equal(analysis.reference_image, reference_tensor(crop, 128))
    maps = region_maps(landmarks_in_crop(analysis.landmarks, framing, 128), 128, 128)
    assert analysis.face_box == maps.face_box and analysis.lip_box == maps.lip_box
    assert torch.equal(analysis.face_region, face_region_tensor(maps.face_mask, 128))
    for ours, ref in zip(analysis.masks, token_masks(maps, 128)):
        assert torch.equal(ours.full, ref.full) and torch.equal(ours.face, ref.face) and torch.equal(ours.lip, ref.lip)
    # The face sits in the middle of the square the model sees; in the 16:9 band the square is shifted down
    # to stay inside the photo (no padding), so the face is higher.
    x0, y0, x1, y1 = analysis.face_box
    assert framing.padding == (0, 0, 0, 0) and abs((x0 + x1) / 2 - 64) < 4
    assert abs((y0 + y1) / 2 - 64) < 4 if shape == "portrait-3x4" else framing.y0 == 0 and (y0 + y1) / 2 < 50
    # The transformed landmarks are where mediapipe finds them in the crop itself.
    found = analyzer.find_landmarks(crop_to_square(photo, framing, 512))
    assert np.median(np.abs(found - landmarks_in_crop(analysis.landmarks, framing, 512))) < 2.0
    paste = analysis.paste_back()
    assert paste.paste(crop).shape == (height // 2 * 2, width // 2 * 2, 3)


def test_reference_tensor_is_square_in_minus_one_one() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    ref = reference_tensor(rgb, 64)
    assert ref.shape == (3, 64, 64) and ref.dtype == torch.float32
    assert -1.0 <= float(ref.min()) and float(ref.max()) <= 1.0
    # Same size in and out: no resampling, just the affine map of the pixels.
    square = rgb[:64, :64]
    assert torch.equal(
        reference_tensor(square, 64), (torch.from_numpy(square).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    )
