"""Find the one face to animate in a photo: mediapipe landmarks, with insightface's detector as a second look.

Every model family starts its portrait preprocessing here (`FaceFinder.find_landmarks`); what a family
then computes from the landmarks (masks, crops, tensors) lives in its own package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from .boxes import Box
from .identity import IdentityEncoder
from .landmarks import NUM_LANDMARKS, LandmarkDetector, choose_face, several_faces_error

# A face the detector found but the landmark model did not is looked at again in a square crop this
# many times the detector's box side: the face then fills about half of it, as in a portrait.
DETECTOR_CROP_SCALE = 2.0


def _crop_around(box: np.ndarray, width: int, height: int) -> Box:
    x0, y0, x1, y1 = (float(v) for v in box)
    half = DETECTOR_CROP_SCALE * max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    return left, top, min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))


def _area_of(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _box_text(box: np.ndarray) -> str:
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    return f"{x0},{y0}-{x1},{y1}"


def check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2) or not np.isfinite(points).all():
        raise InputError(
            f"landmarks must be a finite ({NUM_LANDMARKS}, 2) array of pixel coordinates, got shape {points.shape}"
        )
    return points


class FaceFinder:
    """Holds the landmark and identity models of a model folder (each loaded on first use) and finds the one
    face to animate in a photo. A family's own analysis (what its networks need from the face) builds on it."""

    def __init__(self, models_dir: str | Path, providers: Sequence[str] | None = None):
        self.models_dir = Path(models_dir)
        self.providers = providers
        self._landmarks: LandmarkDetector | None = None
        self._identity: IdentityEncoder | None = None

    @property
    def landmark_detector(self) -> LandmarkDetector:
        if self._landmarks is None:
            self._landmarks = LandmarkDetector(self.models_dir)
        return self._landmarks

    @property
    def identity_encoder(self) -> IdentityEncoder:
        if self._identity is None:
            self._identity = IdentityEncoder(self.models_dir, self.providers)
        return self._identity

    def find_landmarks(self, rgb: np.ndarray, multiple_faces: str = "error", name: str = "image") -> np.ndarray:
        """(478, 2) pixel landmarks of the one face to animate, or an InputError that says what was seen.

        Mediapipe's face detector looks at the whole photo shrunk to 128x128, so it misses faces that
        are small in the frame (two people side by side, a group photo). Then the identity model's
        detector (SCRFD at 640x640) counts the faces, and the landmarks of the chosen one come from a
        crop around it.
        """
        faces = self.landmark_detector.detect(rgb)
        if faces:
            return choose_face(faces, multiple_faces, name)
        boxes = self.identity_encoder.face_boxes(rgb)
        if len(boxes) == 0:
            raise InputError(
                f"no face was found in {name} (neither the landmark model nor the face detector saw one); use a "
                "photo with one clearly visible, roughly frontal face filling about half of the frame"
            )
        if len(boxes) > 1 and multiple_faces == "error":
            raise several_faces_error(
                f"found {len(boxes)} faces in {name} (each too small in the whole photo for the landmark model)"
            )
        box = max(boxes, key=_area_of)
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = _crop_around(box, width, height)
        found = [points + [x0, y0] for points in self.landmark_detector.detect(rgb[y0:y1, x0:x1])]
        # The crop may hold part of a neighbour: take the face whose landmarks centre lies in the box.
        inside = [p for p in found if box[0] <= p[:, 0].mean() <= box[2] and box[1] <= p[:, 1].mean() <= box[3]]
        if not inside:
            seen = "1 face" if len(boxes) == 1 else f"{len(boxes)} faces, the largest"
            raise InputError(
                f"no face was found in {name}: the face detector saw {seen} (box {_box_text(box)}), but the "
                "landmark model found no face there; use a sharper, frontal, well-lit photo, or crop it to the "
                "face so that the face fills about half of the frame"
            )
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        return min(inside, key=lambda p: float(np.linalg.norm(p.mean(axis=0) - centre)))
