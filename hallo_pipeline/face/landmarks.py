"""478-point face landmarks with mediapipe, in pixels of the original image (SPEC §8).

Two backends, same topology and the same pixel convention `[x * width, y * height]`:
- the Face Landmarker of the Tasks API with the `.task` file from the model folder (what the
  release runs);
- the legacy face-mesh solution with refined landmarks (iris points included), whose models
  ship inside the mediapipe wheel (up to 0.10.21), used when the `.task` file is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import CheckpointError, InputError

TASK_FILE = Path("face_analysis") / "models" / "face_landmarker_v2_with_blendshapes.task"
NUM_LANDMARKS = 478
MULTIPLE_FACES_OPTIONS = ("error", "largest")
# Look for more faces than we use, so that other faces are noticed (and counted) instead of ignored.
# This does not change the landmarks of a face: each face's landmarks come from its own detection.
MAX_FACES = 10
_MIN_CONFIDENCE = 0.5


def _mediapipe():
    return require("mediapipe", "mediapipe", "Finding the face landmarks")


class LandmarkDetector:
    """Finds faces and their 478 landmarks. `models_dir` is the Hallo model folder (may be None)."""

    def __init__(self, models_dir: str | Path | None = None):
        task = Path(models_dir) / TASK_FILE if models_dir is not None else None
        self.task_file = task if task is not None and task.is_file() else None
        self.backend = "tasks" if self.task_file is not None else "face_mesh"

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Every face found (at most MAX_FACES): each (478, 2) float64, pixels of `rgb` (H, W, 3 uint8)."""
        rgb = np.ascontiguousarray(rgb)
        faces = self._detect_tasks(rgb) if self.backend == "tasks" else self._detect_face_mesh(rgb)
        height, width = rgb.shape[:2]
        # float64 products of mediapipe's float32 normalised coordinates, as the release computes them.
        out = [np.array([[p.x * width, p.y * height] for p in face], dtype=np.float64) for face in faces]
        for points in out:
            if points.shape != (NUM_LANDMARKS, 2):
                raise CheckpointError(
                    f"the landmark model returned {points.shape[0]} points instead of {NUM_LANDMARKS}; "
                    f"use the official {TASK_FILE.name} (or remove it to use mediapipe's built-in face mesh)"
                )
        return out

    def _detect_tasks(self, rgb: np.ndarray):
        mp = _mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.task_file)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=MAX_FACES,
            min_face_detection_confidence=_MIN_CONFIDENCE,
            min_face_presence_confidence=_MIN_CONFIDENCE,
        )
        try:
            landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:  # mediapipe's error for a file it cannot read as a bundle
            raise CheckpointError(
                f"face landmark model {str(self.task_file)!r} could not be loaded ({exc}); it is damaged or not a "
                "Face Landmarker bundle: delete it and download it again (python -m hallo_pipeline download "
                f"{str(self.task_file.parents[2])!r})"
            ) from exc
        with landmarker:
            result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        return list(result.face_landmarks)

    def _detect_face_mesh(self, rgb: np.ndarray):
        mp = _mediapipe()
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "face_mesh"):
            raise CheckpointError(
                f"no face landmark model: {TASK_FILE} is not in the model folder and this mediapipe "
                f"({getattr(mp, '__version__', '?')}) no longer has the built-in face mesh; download the model "
                "folder completely (python -m hallo_pipeline download <model folder>) or "
                "pip install mediapipe==0.10.21"
            )
        with solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=MAX_FACES,
            refine_landmarks=True,  # adds the 10 iris points: the 478-point topology of the .task model
            min_detection_confidence=_MIN_CONFIDENCE,
        ) as mesh:
            result = mesh.process(rgb)
        return [face.landmark for face in (result.multi_face_landmarks or [])]


def _area(points: np.ndarray) -> float:
    extent = points.max(axis=0) - points.min(axis=0)
    return float(extent[0] * extent[1])


def choose_face(faces: list[np.ndarray], multiple_faces: str = "error", name: str = "image") -> np.ndarray:
    """The one face to animate, or an error that says what to do."""
    check_multiple_faces_option(multiple_faces)
    if not faces:
        raise InputError(
            f"no face was found in {name}; use a photo with one clearly visible, roughly frontal face "
            "filling about half of the frame"
        )
    if len(faces) > 1 and multiple_faces == "error":
        count = f"at least {len(faces)}" if len(faces) >= MAX_FACES else str(len(faces))
        raise several_faces_error(f"found {count} faces in {name}")
    return max(faces, key=_area)


def several_faces_error(found: str) -> InputError:
    return InputError(
        f"{found}; Hallo animates one face. Crop the image to one person, or set multiple_faces='largest' "
        "to animate the largest face"
    )


def check_multiple_faces_option(multiple_faces: str) -> None:
    if multiple_faces not in MULTIPLE_FACES_OPTIONS:
        raise InputError(f"multiple_faces={multiple_faces!r} is unknown; use one of {MULTIPLE_FACES_OPTIONS}")
