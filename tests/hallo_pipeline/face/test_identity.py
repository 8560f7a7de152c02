"""The identity embedding through insightface's real FaceAnalysis, on generated stand-in models."""

from __future__ import annotations

import numpy as np
import pytest

from hallo_pipeline.errors import CheckpointError, InputError
from hallo_pipeline.face.identity import EMBEDDING_SIZE, IdentityEncoder
from hallo_pipeline.testing.tiny_face_models import DETECTOR_FILE, RECOGNISER_FILE, draw_face

BACKGROUND = np.full((640, 640, 3), 60, np.uint8)


def test_models_are_routed_like_antelopev2(identity_encoder) -> None:
    models = identity_encoder._app.models
    assert set(models) == {"detection", "recognition"}
    assert type(models["detection"]).__name__ == "SCRFD" and type(models["recognition"]).__name__ == "ArcFaceONNX"


def test_one_face_gives_its_raw_embedding(identity_encoder) -> None:
    image = draw_face(BACKGROUND, 100, 120, 70)
    faces = identity_encoder.faces(image)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].bbox
    assert x0 < 100 + 35 < x1 and y0 < 120 + 35 < y1, "the box surrounds the drawn face"
    embedding = identity_encoder.embedding(image)
    assert embedding.shape == (EMBEDDING_SIZE,) and embedding.dtype == np.float32
    assert np.isfinite(embedding).all() and abs(float(np.linalg.norm(embedding)) - 1.0) > 0.5, "not L2-normalised"
    # Deterministic, and it depends on the face: another face colour gives another vector.
    assert np.array_equal(identity_encoder.embedding(image), embedding)
    other = identity_encoder.embedding(draw_face(BACKGROUND, 100, 120, 70, blue=90))
    assert not np.allclose(other, embedding)


def test_two_faces_need_an_option_and_largest_picks_the_bigger_box(identity_encoder) -> None:
    small = (60, 60, 70, 0)  # x, y, side, blue: pure green -> smaller box
    large = (420, 400, 70, 255)  # cyan -> twice the box size
    both = draw_face(draw_face(BACKGROUND, *small), *large)
    with pytest.raises(InputError, match="found 2 faces.*multiple_faces='largest'"):
        identity_encoder.embedding(both)
    chosen = identity_encoder.embedding(both, multiple_faces="largest")
    alone = identity_encoder.embedding(draw_face(BACKGROUND, *large))
    assert np.allclose(chosen, alone, atol=1e-5), "the largest face's own embedding"
    assert not np.allclose(chosen, identity_encoder.embedding(draw_face(BACKGROUND, *small)))


def test_no_face(identity_encoder) -> None:
    with pytest.raises(InputError, match="found no face.*allow_missing_identity=True"):
        identity_encoder.embedding(BACKGROUND)
    zeros = identity_encoder.embedding(BACKGROUND, allow_missing=True)
    assert zeros.shape == (EMBEDDING_SIZE,) and not zeros.any()


def test_missing_or_incomplete_model_folder(tmp_path, tiny_models_dir) -> None:
    with pytest.raises(CheckpointError, match="face_analysis/models.*antelopev2"):
        IdentityEncoder(tmp_path)
    only_recogniser = tmp_path / "partial"
    folder = only_recogniser / "face_analysis" / "models"
    folder.mkdir(parents=True)
    (folder / RECOGNISER_FILE).write_bytes(
        (tiny_models_dir / "face_analysis" / "models" / RECOGNISER_FILE).read_bytes()
    )
    with pytest.raises(CheckpointError, match=f"no face detector.*{DETECTOR_FILE}"):
        IdentityEncoder(only_recogniser)


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty"])
@pytest.mark.parametrize("name", [DETECTOR_FILE, RECOGNISER_FILE])
def test_damaged_model_file_is_named(tmp_path, tiny_models_dir, name: str, damage: str) -> None:
    folder = tmp_path / "face_analysis" / "models"
    folder.mkdir(parents=True)
    for file in (DETECTOR_FILE, RECOGNISER_FILE):
        (folder / file).write_bytes((tiny_models_dir / "face_analysis" / "models" / file).read_bytes())
    good = (folder / name).read_bytes()
    damaged = {
        "random bytes": np.random.default_rng(0).integers(0, 256, len(good), dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 2],
        "empty": b"",
    }[damage]
    (folder / name).write_bytes(damaged)
    with pytest.raises(CheckpointError, match=rf"face model file '[^']*{name}' is damaged.*download it again") as info:
        IdentityEncoder(tmp_path)
    assert "python -m hallo_pipeline download" in str(info.value)


def test_no_future_warning_reaches_the_user(identity_encoder) -> None:
    """insightface's alignment calls a deprecated scikit-image API; that is not the user's business."""
    import warnings

    image = draw_face(BACKGROUND, 100, 120, 70)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        assert identity_encoder.embedding(image).any()
        assert len(identity_encoder.face_boxes(image)) == 1
        # Only around insightface's calls: the caller's own filters are as they were.
        assert warnings.filters == filters
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []
