"""Everything the Hallo pipeline needs from one portrait, in one call (SPEC §8).

    analysis = analyze_face("face.png", "ComfyUI/models/hallo")
    analysis.reference_image  # (3, S, S) in [-1, 1]: VAE input of the reference
    analysis.face_region      # (3, S, S) in [0, 1]: FaceLocator input
    analysis.masks            # 4 x RegionMasks: audio-attention region masks per UNet level
    analysis.embedding        # (512,) raw ArcFace vector: ImageProj input
    analysis.paste_back()     # framing.PasteBack: generated frames -> the whole photo, moving

With `framing="crop"` (the default) the model sees a square crop around the face at the working size,
and masks, identity and face region are computed on that crop; with "stretch" it sees the whole photo
resized to a square, as the release does (the parity fixtures are made that way).
`FaceAnalyzer` keeps the detectors loaded across portraits (its face finding is the shared `face.finder`);
`analyze_face` is the one-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import CROP_SCALE, FACE_EXPAND_RATIO, IMAGE_SIZE
from ..errors import InputError
from ..face.boxes import Box
from ..face.finder import FaceFinder, check_landmarks
from ..face.images import ImageLike, to_rgb_uint8
from ..face.landmarks import check_multiple_faces_option
from ..face.previews import FacePreviews
from ..framing import Framing, PasteBack, check_framing_mode, crop_to_square, frame_face, landmarks_in_crop
from .masks import RegionMaps, check_image_size, face_region_tensor, region_maps, token_masks
from .models.audio_module import RegionMasks


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

    def previews(self) -> FacePreviews:
        """The reference image and the pose / face / lip region maps the audio strengths act on."""
        maps = self.maps
        return FacePreviews((self.reference_image + 1) / 2, maps.full, maps.face, maps.lip, self.face_region[0])

    @property
    def face_box(self) -> Box:
        return self.maps.face_box

    @property
    def lip_box(self) -> Box:
        return self.maps.lip_box


def reference_tensor(rgb: np.ndarray, image_size: int) -> torch.Tensor:
    """The reference image at the working size: (3, S, S) float32 in [-1, 1].

    Like the release: a plain bilinear (antialiased) resize to a square, so a non-square image is
    stretched (framing "stretch"); with framing "crop" it is given the square crop, already at size.
    """
    from PIL import Image

    check_image_size(image_size)
    resized = Image.fromarray(rgb).resize((image_size, image_size), Image.BILINEAR)
    chw = torch.from_numpy(np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1)))
    return (chw.to(torch.float32) / 255 - 0.5) / 0.5


class FaceAnalyzer(FaceFinder):
    """Hallo's analysis of a portrait (`analyze`) on top of the shared face finder; the models stay loaded."""

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
        landmarks = check_landmarks(landmarks)
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
