"""Region masks from the face and lip boxes (SPEC §8), bit-exact with the release.

Every step is integer image arithmetic done with the same library calls as the release
(OpenCV for resize/blur/normalise/subtract, PIL for the token-level resizes), because a
different resampler or rounding changes mask values and therefore the generated video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._optional import require
from ..config import FACE_EXPAND_RATIO
from ..face.boxes import LIP_EXPAND_RATIO, Box, box_mask, face_and_lip_boxes
from .models.audio_module import RegionMasks

BLUR_MAP_SIZE = 64
FACE_BLUR_KERNEL = 51
LIP_BLUR_KERNEL = 31
# Token masks exist at image_size/8 (latent size) and three coarser levels of the UNet.
LEVEL_DIVISORS = (8, 16, 32, 64)


def _cv2():
    return require("cv2", "opencv-python", "Computing the face masks")


@dataclass(frozen=True)
class RegionMaps:
    """The release's intermediate mask images (uint8), kept for previews and checks."""

    face_box: Box
    lip_box: Box
    face_mask: np.ndarray  # (H, W) {0, 255} at the source resolution: the FaceLocator's source
    lip_mask: np.ndarray  # (H, W) {0, 255}
    face_blur: np.ndarray  # (64, 64) blurred face box
    full: np.ndarray  # (64, 64) pose / background region = 255 - face_blur
    face: np.ndarray  # (64, 64) face without lips
    lip: np.ndarray  # (64, 64) lips


def blur_mask(mask: np.ndarray, kernel: int) -> np.ndarray:
    """Shrink to 64x64 (bilinear, no antialiasing), Gaussian blur (sigma from the kernel), stretch to 0..255."""
    cv2 = _cv2()
    small = cv2.resize(mask, (BLUR_MAP_SIZE, BLUR_MAP_SIZE), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(small, (kernel, kernel), 0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def region_maps(
    landmarks: np.ndarray,
    width: int,
    height: int,
    face_expand_ratio: float = FACE_EXPAND_RATIO.default,
    lip_expand_ratio: float = LIP_EXPAND_RATIO,
) -> RegionMaps:
    """All mask images of one portrait from its landmarks in pixels of a `width` x `height` image."""
    cv2 = _cv2()
    face_box, lip_box = face_and_lip_boxes(landmarks, width, height, face_expand_ratio, lip_expand_ratio)
    face_mask = box_mask(face_box, height, width)
    lip_mask = box_mask(lip_box, height, width)
    face_blur = blur_mask(face_mask, FACE_BLUR_KERNEL)
    lip_blur = blur_mask(lip_mask, LIP_BLUR_KERNEL)
    # float64 then truncation toward zero, exactly as the release computes it (255 - x would differ
    # where the float product lands just below an integer).
    full = (255 * (1 - face_blur / 255)).astype(np.uint8)
    face = cv2.subtract(face_blur, lip_blur)  # saturating at 0
    return RegionMaps(face_box, lip_box, face_mask, lip_mask, face_blur, full, face, lip_blur)


def check_image_size(image_size: int) -> int:
    from ..errors import InputError

    if not isinstance(image_size, int) or image_size <= 0 or image_size % LEVEL_DIVISORS[-1]:
        raise InputError(
            f"image_size {image_size!r} cannot be used: the masks need sizes divisible by "
            f"{LEVEL_DIVISORS[-1]} (the UNet's coarsest level is image_size/{LEVEL_DIVISORS[-1]}); use 512 "
            "(what Hallo was trained at) or another multiple of 64", "image_size",
        )
    return image_size


def _resize_to_unit_float(map_u8: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(map_u8).resize((side, side), Image.BILINEAR)  # PIL: antialiased
    # float32 division, as torchvision's ToTensor does: float64 division then rounding could differ.
    return np.asarray(resized, dtype=np.float32) / np.float32(255)


def token_masks(maps: RegionMaps, image_size: int) -> list[RegionMasks]:
    """Per UNet level (level 0 = image_size/8): the three region masks, each (1, side*side) row-major in [0, 1]."""
    check_image_size(image_size)
    levels = []
    for divisor in LEVEL_DIVISORS:
        side = image_size // divisor
        full, face, lip = (
            torch.from_numpy(_resize_to_unit_float(m, side).reshape(1, side * side))
            for m in (maps.full, maps.face, maps.lip)
        )
        levels.append(RegionMasks(full=full, face=face, lip=lip))
    return levels


def face_region_tensor(face_mask: np.ndarray, image_size: int) -> torch.Tensor:
    """The FaceLocator input: the full-resolution face box resized to (S, S), (3, S, S) in [0, 1].

    The antialiased resize leaves fractional values along the box edges; Hallo2's motion-frame
    drop keeps every pixel where this is non-zero, so the border matters.
    """
    from PIL import Image

    check_image_size(image_size)
    rgb = Image.fromarray(face_mask).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    chw = np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1))
    return torch.from_numpy(chw).to(torch.float32) / 255
