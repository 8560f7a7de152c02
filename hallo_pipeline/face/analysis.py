"""Everything the pipeline needs from one portrait, in one call (SPEC §8).

    analysis = analyze_face("face.png", "ComfyUI/models/hallo")
    analysis.reference_image  # (3, S, S) in [-1, 1]: VAE input of the reference
    analysis.face_region      # (3, S, S) in [0, 1]: FaceLocator input
    analysis.masks            # 4 x RegionMasks: audio-attention region masks per UNet level
    analysis.embedding        # (512,) raw ArcFace vector: ImageProj input
    analysis.paste_back()     # framing.PasteBack: generated frames -> the whole photo, moving

With `framing="crop"` (the default) the model sees a square crop around the face at the working size,
and masks, identity and face region are computed on that crop; with "stretch" it sees the whole photo
resized to a square, as the release does (the parity fixtures are made that way).
`FaceAnalyzer` keeps the detectors loaded across portraits; `analyze_face` is the one-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import CROP_SCALE, FACE_EXPAND_RATIO, IMAGE_SIZE
from ..errors import InputError
from ..framing import Framing, PasteBack, check_framing_mode, crop_to_square, frame_face, landmarks_in_crop
from ..models.audio_module import RegionMasks
from .boxes import Box
from .identity import IdentityEncoder
from .images import ImageLike, reference_tensor, to_rgb_uint8
from .landmarks import (
    NUM_LANDMARKS,
    LandmarkDetector,
    check_multiple_faces_option,
    choose_face,
    several_faces_error,
)
from .masks import RegionMaps, check_image_size, face_region_tensor, region_maps, token_masks


@dataclass
class FaceAnalysis:
    reference_image: torch.Tensor  # (3, S, S) float32 in [-1, 1]
    face_region: torch.Tensor  # (3, S, S) float32 in [0, 1]
    masks: list[RegionMasks]  # levels S/8, S/16, S/32, S/64; each mask (1, side*side) in [0, 1]
    embedding: torch.Tensor  # (512,) float32, raw (not normalised); zeros if allowed and no face
    landmarks: np.ndarray  # (478, 2) float64, pixels of the source photo
    maps: RegionMaps  # boxes and box masks in pixels of the image the model sees, 64x64 region maps
    image_size: int
    framing: Framing | None = None  # the crop around the face; None: the whole photo was stretched
    photo: np.ndarray | None = None  # (H, W, 3) uint8, the source photo (what frames are pasted into)

    def paste_back(self, **options) -> PasteBack:
        """A `framing.PasteBack` into the source photo; options: feather, color_match, max_side."""
        if self.framing is None or self.photo is None:
            raise InputError(
                "this face was analysed with framing='stretch' (the whole photo squeezed into a square), so there "
                "is no crop to paste back into the photo; analyse it with framing='crop'", "framing",
            )
        return PasteBack(self.photo, self.framing, **options)

    @property
    def face_box(self) -> Box:
        return self.maps.face_box

    @property
    def lip_box(self) -> Box:
        return self.maps.lip_box


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


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2) or not np.isfinite(points).all():
        raise InputError(
            f"landmarks must be a finite ({NUM_LANDMARKS}, 2) array of pixel coordinates, got shape {points.shape}"
        )
    return points


class FaceAnalyzer:
    """Holds the landmark and identity models of a model folder; each is loaded on first use."""

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

    def analyze(
        self,
        image: ImageLike,
        image_size: int = IMAGE_SIZE.default,
        face_expand_ratio: float = FACE_EXPAND_RATIO.default,
        *,
        multiple_faces: str = "error",
        allow_missing_identity: bool = False,
        landmarks: np.ndarray | None = None,
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
    ) -> FaceAnalysis:
        """Analyse one portrait.

        multiple_faces: "error" (default) refuses an image with several faces; "largest" uses
            the largest one.
        allow_missing_identity: when the recogniser finds no face, continue with a zero
            embedding (the release's silent behaviour) instead of raising.
        landmarks: (478, 2) pixel landmarks of the photo to use instead of running mediapipe.
        framing: "crop" (a square `crop_scale` x the face oval's box, see `framing.py`) or "stretch".
        """
        IMAGE_SIZE.check(check_image_size(image_size))
        check_multiple_faces_option(multiple_faces)
        FACE_EXPAND_RATIO.check(face_expand_ratio)
        check_framing_mode(framing)
        CROP_SCALE.check(crop_scale)
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        if landmarks is None:
            landmarks = self.find_landmarks(rgb, multiple_faces)
        landmarks = _check_landmarks(landmarks)
        placed, seen, seen_landmarks = None, rgb, landmarks
        if framing == "crop":
            placed = frame_face(landmarks, width, height, crop_scale)
            seen = crop_to_square(rgb, placed, image_size)
            seen_landmarks = landmarks_in_crop(landmarks, placed, image_size)
        maps = region_maps(seen_landmarks, seen.shape[1], seen.shape[0], face_expand_ratio)
        embedding = self.identity_encoder.embedding(seen, multiple_faces, allow_missing_identity)
        return FaceAnalysis(
            reference_image=reference_tensor(seen, image_size),
            face_region=face_region_tensor(maps.face_mask, image_size),
            masks=token_masks(maps, image_size),
            embedding=torch.from_numpy(embedding),
            landmarks=landmarks,
            maps=maps,
            image_size=image_size,
            framing=placed,
            photo=rgb if placed is not None else None,
        )

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


def analyze_face(
    image: ImageLike,
    models_dir: str | Path,
    image_size: int = IMAGE_SIZE.default,
    face_expand_ratio: float = FACE_EXPAND_RATIO.default,
    *,
    multiple_faces: str = "error",
    allow_missing_identity: bool = False,
    landmarks: np.ndarray | None = None,
    providers: Sequence[str] | None = None,
    framing: str = "crop",
    crop_scale: float = CROP_SCALE.default,
) -> FaceAnalysis:
    """One-shot `FaceAnalyzer(models_dir, providers).analyze(...)`; see there for the options."""
    return FaceAnalyzer(models_dir, providers).analyze(
        image,
        image_size,
        face_expand_ratio,
        multiple_faces=multiple_faces,
        allow_missing_identity=allow_missing_identity,
        landmarks=landmarks,
        framing=framing,
        crop_scale=crop_scale,
    )
