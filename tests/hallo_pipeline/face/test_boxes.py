"""Box maths: half-to-even rounding, integer half-sizes, shift (not clip) at the image border."""

from __future__ import annotations

import numpy as np
import pytest

from hallo_pipeline.face.boxes import LIP_IDS, SILHOUETTE_IDS, expand_box, landmark_box


def test_landmark_box_rounds_half_to_even() -> None:
    landmarks = np.zeros((478, 2))
    landmarks[list(SILHOUETTE_IDS)] = [10.0, 20.0]
    landmarks[SILHOUETTE_IDS[0]] = [2.5, 3.5]  # min corner: 2.5 -> 2, 3.5 -> 4
    landmarks[SILHOUETTE_IDS[1]] = [10.5, 20.5]  # max corner: 10.5 -> 10, 20.5 -> 20
    landmarks[LIP_IDS[0]] = [400.0, 400.0]  # not a silhouette point: ignored
    assert landmark_box(landmarks, SILHOUETTE_IDS) == (2.0, 4.0, 10.0, 20.0)


@pytest.mark.parametrize("ratio", [1.0, 1.2, 1.7, 2.0])
def test_expansion_about_centre_with_integer_half_sizes(ratio: float) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0 = rng.integers(150, 250, size=2).astype(float)
        w, h = rng.integers(2, 60, size=2).astype(float)
        box = expand_box((x0, y0, x0 + w, y0 + h), ratio, 1000, 1000)
        assert all(isinstance(v, int) for v in box)
        for lo, hi, start, size in ((box[0], box[2], x0, w), (box[1], box[3], y0, h)):
            mid = (2 * start + size) // 2
            half = (size * ratio) // 2
            assert (lo, hi) == (mid - half, mid + half)


def test_box_leaving_the_image_is_shifted_not_clipped() -> None:
    width, height = 200, 100
    inside = expand_box((80, 40, 120, 60), 2.0, width, height)
    for box in [(0, 0, 40, 20), (160, 80, 200, 100)]:  # corners: the expanded box sticks out
        shifted = expand_box(box, 2.0, width, height)
        assert shifted[2] - shifted[0] == inside[2] - inside[0]
        assert shifted[3] - shifted[1] == inside[3] - inside[1]
        assert 0 <= shifted[0] and shifted[2] <= width and 0 <= shifted[1] and shifted[3] <= height
    left = expand_box((0, 0, 40, 20), 2.0, width, height)
    assert left[0] == 0 and left[1] == 0
    right = expand_box((160, 80, 200, 100), 2.0, width, height)
    assert right[2] == width and right[3] == height


def test_box_larger_than_the_image_is_clipped_to_it() -> None:
    assert expand_box((10, 10, 90, 90), 3.0, 100, 100) == (0, 0, 100, 100)
