"""Face and lip boxes from the 478-point face mesh, expanded the way the release does it."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Landmark indices of the MediaPipe face mesh (478-point topology): the face oval and the outer lip
# contour. These are the lists the release uses (`parity/masks.json` records them).
# fmt: off
SILHOUETTE_IDS: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
LIP_IDS: tuple[int, ...] = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
)
# fmt: on
LIP_EXPAND_RATIO = 2.0

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1 and y1 exclusive


def landmark_box(landmarks: np.ndarray, ids: Sequence[int]) -> tuple[float, float, float, float]:
    """Bounding box of the chosen landmarks, each edge rounded half-to-even (`np.round`)."""
    points = np.asarray(landmarks, dtype=np.float64)[list(ids)]
    x0, y0 = np.round(points.min(axis=0))
    x1, y1 = np.round(points.max(axis=0))
    return float(x0), float(y0), float(x1), float(y1)


def _expand_axis(lo: float, hi: float, ratio: float, limit: int) -> tuple[int, int]:
    # Floor divisions on floats, in this order, are what make the boxes bit-exact with the release.
    mid = (hi + lo) // 2
    half = ((hi - lo) * ratio) // 2
    lo, hi = mid - half, mid + half
    # A box that leaves the image is shifted back in, keeping its size (not clipped).
    if lo < 0:
        lo, hi = 0.0, hi - lo
    if hi > limit:
        lo, hi = lo - (hi - limit), float(limit)
    # Only a box larger than the image can still stick out; the release would then slice with a
    # negative index (wrapping around), so we clip instead.
    return round(max(lo, 0.0)), round(hi)


def expand_box(box: Sequence[float], ratio: float, width: int, height: int) -> Box:
    """Scale a box about its centre by `ratio` with integer half-sizes, kept inside the image."""
    x0, y0, x1, y1 = box
    x0, x1 = _expand_axis(x0, x1, ratio, width)
    y0, y1 = _expand_axis(y0, y1, ratio, height)
    return x0, y0, x1, y1


def face_and_lip_boxes(
    landmarks: np.ndarray, width: int, height: int, face_expand_ratio: float, lip_expand_ratio: float = LIP_EXPAND_RATIO
) -> tuple[Box, Box]:
    face = expand_box(landmark_box(landmarks, SILHOUETTE_IDS), face_expand_ratio, width, height)
    lip = expand_box(landmark_box(landmarks, LIP_IDS), lip_expand_ratio, width, height)
    return face, lip


def box_mask(box: Box, height: int, width: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask
