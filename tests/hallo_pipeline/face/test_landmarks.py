"""Landmarks with real mediapipe: the Tasks API with the tiny folder's .task, and the built-in face mesh
where this mediapipe still has it (<= 0.10.21)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.landmarks import NUM_LANDMARKS, TASK_FILE, LandmarkDetector, choose_face

mp = pytest.importorskip("mediapipe")


def has_face_mesh() -> bool:
    return hasattr(getattr(mp, "solutions", None), "face_mesh")


@pytest.fixture(scope="module", params=["tasks", "face_mesh"])
def detector(request, tmp_path_factory) -> LandmarkDetector:
    if request.param == "face_mesh":
        if not has_face_mesh():
            pytest.skip(f"mediapipe {mp.__version__} has no built-in face mesh (it went after 0.10.21)")
        return LandmarkDetector(models_dir=None)
    root = tmp_path_factory.mktemp("landmarker")
    (root / TASK_FILE).parent.mkdir(parents=True)
    shutil.copyfile(request.getfixturevalue("face_landmarker_task"), root / TASK_FILE)
    return LandmarkDetector(models_dir=root)


@pytest.fixture(scope="module")
def portrait_landmarks(detector, portrait) -> np.ndarray:
    return choose_face(detector.detect(portrait))


def test_one_face_in_pixels(request, detector, portrait, portrait_landmarks) -> None:
    assert detector.backend == request.node.callspec.params["detector"]
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


def test_tasks_api_is_used_when_the_task_file_exists(tmp_path, face_landmarker_task) -> None:
    task = tmp_path / TASK_FILE
    task.parent.mkdir(parents=True)
    shutil.copyfile(face_landmarker_task, task)
    detector = LandmarkDetector(models_dir=tmp_path)
    assert detector.backend == "tasks" and detector.task_file == task
    assert LandmarkDetector(models_dir=tmp_path / "elsewhere").backend == "face_mesh"


def test_tiny_task_gives_the_face_mesh_landmarks(request, detector, portrait_landmarks) -> None:
    """The tiny folder's .task is the legacy refined face mesh through the Tasks API: on the parity
    portrait both give the landmarks stored with the fixtures (mediapipe's face mesh) to a few
    thousandths of a pixel, iris points included."""
    from tests.conftest import parity_dir

    path = parity_dir() / "inputs" / "landmarks.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} not found (set HALLO_PARITY_DIR to the fixture folder)")
    from safetensors.numpy import load_file

    stored = load_file(str(path))["landmarks"]
    assert np.abs(portrait_landmarks - stored).max() < 0.02, request.node.callspec.params["detector"]


def test_mediapipe_without_face_mesh_and_no_task_file_names_both_fixes(monkeypatch, tmp_path) -> None:
    """Newer mediapipe ships no built-in face mesh: without the .task file that is a model-folder problem."""
    import mediapipe

    from hallo_pipeline.errors import CheckpointError
    from hallo_pipeline.face.landmarks import LandmarkDetector

    monkeypatch.delattr(mediapipe, "solutions", raising=False)
    with pytest.raises(CheckpointError,
                       match=r"face_landmarker_v2_with_blendshapes\.task.*hallo_pipeline download"
                       r".*mediapipe==0\.10\.21"):
        LandmarkDetector(tmp_path).detect(np.zeros((64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"PK\x03\x04 a cut-off zip"])
def test_damaged_task_file_is_named(tmp_path, content: bytes) -> None:
    from hallo_pipeline.errors import CheckpointError

    task = tmp_path / TASK_FILE
    task.parent.mkdir(parents=True)
    task.write_bytes(content)
    message = rf"face landmark model '[^']*{TASK_FILE.name}' could not be loaded.*download it again"
    with pytest.raises(CheckpointError, match=message):
        LandmarkDetector(tmp_path).detect(np.zeros((64, 64, 3), dtype=np.uint8))
