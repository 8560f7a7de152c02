"""Landmarks with real mediapipe: the built-in face mesh offline, the Tasks API when a .task file exists."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.landmarks import NUM_LANDMARKS, TASK_FILE, LandmarkDetector, choose_face

mp = pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    return LandmarkDetector(models_dir=None)


@pytest.fixture(scope="module")
def portrait_landmarks(detector, portrait) -> np.ndarray:
    return choose_face(detector.detect(portrait))


def test_one_face_in_pixels(detector, portrait, portrait_landmarks) -> None:
    assert detector.backend == "face_mesh"
    assert portrait_landmarks.shape == (NUM_LANDMARKS, 2) and portrait_landmarks.dtype == np.float64
    height, width = portrait.shape[:2]
    assert (
        (portrait_landmarks >= 0).all()
        and (portrait_landmarks[:, 0] < width).all()
        and (portrait_landmarks[:, 1] < height).all()
    )


def test_large_non_square_image_gives_landmarks_at_full_resolution(detector, portrait, portrait_landmarks) -> None:
    """Upscaled 3x and placed in a wide canvas: the landmarks follow, in the big image's pixels."""
    height, width = portrait.shape[:2]
    big = np.asarray(Image.fromarray(portrait).resize((3 * width, 3 * height), Image.BICUBIC))
    canvas = np.full((3 * height + 200, 3 * width + 900, 3), 128, np.uint8)
    canvas[100 : 100 + 3 * height, 300 : 300 + 3 * width] = big
    found = choose_face(detector.detect(canvas))
    expected = portrait_landmarks * 3 + [300, 100]
    # Mediapipe works on a downscaled crop; a few source pixels of disagreement at 3x is the model's noise.
    assert np.median(np.abs(found - expected)) < 3 * 2.0


def test_no_face_is_an_error(detector) -> None:
    blank = np.full((256, 256, 3), 200, np.uint8)
    faces = detector.detect(blank)
    assert faces == []
    with pytest.raises(InputError, match="no face was found in image"):
        choose_face(faces)


def two_faces(portrait: np.ndarray) -> np.ndarray:
    """The portrait's head twice side by side, the right copy at 70 %, large enough for the detector."""
    head = portrait[20:250, 110:340]  # the face fills this crop (see the masks case's face box)
    side = head.shape[0]
    small = np.asarray(Image.fromarray(head).resize((int(side * 0.7),) * 2, Image.BILINEAR))
    canvas = np.full((side, 2 * side + 20, 3), 128, np.uint8)
    canvas[:, :side] = head
    top = (side - small.shape[0]) // 2
    canvas[top : top + small.shape[0], side + 20 : side + 20 + small.shape[1]] = small
    return canvas


def test_two_faces_need_an_option(detector, portrait) -> None:
    canvas = two_faces(portrait)
    faces = detector.detect(canvas)
    assert len(faces) == 2
    with pytest.raises(InputError, match="found 2 faces in image.*multiple_faces='largest'"):
        choose_face(faces)
    chosen = choose_face(faces, "largest")
    assert chosen[:, 0].max() < canvas.shape[1] // 2, "the larger face is the one on the left"


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(InputError, match="multiple_faces='biggest' is unknown"):
        choose_face([np.zeros((NUM_LANDMARKS, 2))], "biggest")


def test_tasks_api_is_used_when_the_task_file_exists(tmp_path, portrait) -> None:
    """Plumbing only: the official .task model cannot be had offline, so this bundle packs the
    wheel's own detector and 468-point mesh model; its points are not meaningful, their count and
    pixel scaling are."""
    modules = Path(mp.__file__).parent / "modules"
    task = tmp_path / TASK_FILE
    task.parent.mkdir(parents=True)
    with zipfile.ZipFile(task, "w") as bundle:
        bundle.write(modules / "face_detection" / "face_detection_short_range.tflite", "face_detector.tflite")
        bundle.write(modules / "face_landmark" / "face_landmark.tflite", "face_landmarks_detector.tflite")
    detector = LandmarkDetector(models_dir=tmp_path)
    assert detector.backend == "tasks" and detector.task_file == task
    faces = detector.detect(portrait)
    assert len(faces) == 1 and faces[0].shape == (NUM_LANDMARKS, 2) and faces[0].dtype == np.float64
    assert LandmarkDetector(models_dir=tmp_path / "elsewhere").backend == "face_mesh"


def test_mediapipe_without_face_mesh_and_no_task_file_names_both_fixes(monkeypatch, tmp_path) -> None:
    """Newer mediapipe ships no built-in face mesh: without the .task file that is a model-folder problem."""
    import mediapipe

    from hallo_pipeline.errors import CheckpointError
    from hallo_pipeline.face.landmarks import LandmarkDetector

    monkeypatch.delattr(mediapipe, "solutions", raising=False)
    with pytest.raises(CheckpointError, match=r"face_landmarker_v2_with_blendshapes\.task.*hallo_pipeline download.*mediapipe==0\.10\.21"):
        LandmarkDetector(tmp_path).detect(np.zeros((64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"PK\x03\x04 a cut-off zip"])
def test_damaged_task_file_is_named(tmp_path, content: bytes) -> None:
    from hallo_pipeline.errors import CheckpointError

    task = tmp_path / TASK_FILE
    task.parent.mkdir(parents=True)
    task.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"face landmark model '[^']*{TASK_FILE.name}' could not be loaded.*download it again"):
        LandmarkDetector(tmp_path).detect(np.zeros((64, 64, 3), dtype=np.uint8))
