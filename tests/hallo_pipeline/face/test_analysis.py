"""`analyze_face`, the pipeline's entry point: real mediapipe + insightface over stand-in models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.analysis import FaceAnalyzer, analyze_face
from hallo_pipeline.face.masks import LEVEL_DIVISORS, face_region_tensor, region_maps, token_masks
from hallo_pipeline.testing.tiny_face_models import draw_face

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def portrait_with_marker(portrait) -> np.ndarray:
    """The portrait plus a square the stand-in detector takes for the face (away from the real one)."""
    return draw_face(portrait, 20, 420, 64)


@pytest.mark.parametrize("image_size", [128, 256])
def test_analysis_is_consistent(portrait_with_marker, tiny_models_dir, image_size: int) -> None:
    analysis = analyze_face(portrait_with_marker, tiny_models_dir, image_size=image_size)
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


def test_non_square_rgba_image(portrait_with_marker, tiny_models_dir) -> None:
    """A non-square RGBA portrait: converted, masks computed at its own size, reference stretched."""
    tall = portrait_with_marker[:, 60:460]  # 512 x 400
    rgba = np.dstack([tall, np.full(tall.shape[:2], 255, np.uint8)])
    analysis = FaceAnalyzer(tiny_models_dir).analyze(rgba, image_size=128)
    assert analysis.maps.face_mask.shape == tall.shape[:2]
    assert analysis.reference_image.shape == (3, 128, 128)


def test_given_landmarks_skip_mediapipe(portrait_with_marker, tiny_models_dir) -> None:
    analyzer = FaceAnalyzer(tiny_models_dir)
    found = analyzer.analyze(portrait_with_marker, image_size=128)
    shifted = found.landmarks + [5.0, 0.0]
    again = analyzer.analyze(portrait_with_marker, image_size=128, landmarks=shifted)
    assert np.array_equal(again.landmarks, shifted)
    with pytest.raises(InputError, match=r"landmarks must be a finite \(478, 2\)"):
        analyzer.analyze(portrait_with_marker, image_size=128, landmarks=shifted[:10])


def test_options_are_checked(portrait_with_marker, tiny_models_dir) -> None:
    analyzer = FaceAnalyzer(tiny_models_dir)
    with pytest.raises(InputError, match="image_size 500"):
        analyzer.analyze(portrait_with_marker, image_size=500)
    with pytest.raises(InputError, match="multiple_faces='all' is unknown"):
        analyzer.analyze(portrait_with_marker, multiple_faces="all")
    with pytest.raises(InputError, match="face_expand_ratio must be positive"):
        analyzer.analyze(portrait_with_marker, face_expand_ratio=0)


def test_missing_identity_is_an_error_unless_allowed(portrait, tiny_models_dir) -> None:
    analyzer = FaceAnalyzer(tiny_models_dir)
    with pytest.raises(InputError, match="found no face"):
        analyzer.analyze(portrait, image_size=128)  # no marker: the stand-in recogniser sees nothing
    analysis = analyzer.analyze(portrait, image_size=128, allow_missing_identity=True)
    assert not analysis.embedding.any()
