"""Everything the pipeline needs from one portrait, in one call (SPEC §8).

    analysis = analyze_face("face.png", "ComfyUI/models/hallo")
    analysis.reference_image  # (3, S, S) in [-1, 1]: VAE input of the reference
    analysis.face_region      # (3, S, S) in [0, 1]: FaceLocator input
    analysis.masks            # 4 x RegionMasks: audio-attention region masks per UNet level
    analysis.embedding        # (512,) raw ArcFace vector: ImageProj input

`FaceAnalyzer` keeps the detectors loaded across portraits; `analyze_face` is the one-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from ..models.audio_module import RegionMasks
from .boxes import Box
from .identity import IdentityEncoder
from .images import ImageLike, reference_tensor, to_rgb_uint8
from .landmarks import NUM_LANDMARKS, LandmarkDetector, check_multiple_faces_option, choose_face
from .masks import RegionMaps, check_image_size, face_region_tensor, region_maps, token_masks


@dataclass
class FaceAnalysis:
    reference_image: torch.Tensor  # (3, S, S) float32 in [-1, 1]
    face_region: torch.Tensor  # (3, S, S) float32 in [0, 1]
    masks: list[RegionMasks]  # levels S/8, S/16, S/32, S/64; each mask (1, side*side) in [0, 1]
    embedding: torch.Tensor  # (512,) float32, raw (not normalised); zeros if allowed and no face
    landmarks: np.ndarray  # (478, 2) float64, pixels of the source image
    maps: RegionMaps  # boxes, full-resolution box masks and the 64x64 region maps (previews)
    image_size: int

    @property
    def face_box(self) -> Box:
        return self.maps.face_box

    @property
    def lip_box(self) -> Box:
        return self.maps.lip_box


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
        image_size: int = 512,
        face_expand_ratio: float = 1.2,
        *,
        multiple_faces: str = "error",
        allow_missing_identity: bool = False,
        landmarks: np.ndarray | None = None,
    ) -> FaceAnalysis:
        """Analyse one portrait.

        multiple_faces: "error" (default) refuses an image with several faces; "largest" uses
            the largest one.
        allow_missing_identity: when the recogniser finds no face, continue with a zero
            embedding (the release's silent behaviour) instead of raising.
        landmarks: (478, 2) pixel landmarks to use instead of running mediapipe.
        """
        check_image_size(image_size)
        check_multiple_faces_option(multiple_faces)
        if not face_expand_ratio > 0:
            raise InputError(f"face_expand_ratio must be positive, got {face_expand_ratio!r}; Hallo uses 1.2")
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        if landmarks is None:
            landmarks = choose_face(self.landmark_detector.detect(rgb), multiple_faces)
        landmarks = _check_landmarks(landmarks)
        maps = region_maps(landmarks, width, height, face_expand_ratio)
        embedding = self.identity_encoder.embedding(rgb, multiple_faces, allow_missing_identity)
        return FaceAnalysis(
            reference_image=reference_tensor(rgb, image_size),
            face_region=face_region_tensor(maps.face_mask, image_size),
            masks=token_masks(maps, image_size),
            embedding=torch.from_numpy(embedding),
            landmarks=landmarks,
            maps=maps,
            image_size=image_size,
        )


def analyze_face(
    image: ImageLike,
    models_dir: str | Path,
    image_size: int = 512,
    face_expand_ratio: float = 1.2,
    *,
    multiple_faces: str = "error",
    allow_missing_identity: bool = False,
    landmarks: np.ndarray | None = None,
    providers: Sequence[str] | None = None,
) -> FaceAnalysis:
    """One-shot `FaceAnalyzer(models_dir, providers).analyze(...)`; see there for the options."""
    return FaceAnalyzer(models_dir, providers).analyze(
        image,
        image_size,
        face_expand_ratio,
        multiple_faces=multiple_faces,
        allow_missing_identity=allow_missing_identity,
        landmarks=landmarks,
    )
