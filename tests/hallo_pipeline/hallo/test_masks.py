"""Mask maps and token masks for any image size that is a multiple of 64, and any source shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.boxes import LIP_IDS, SILHOUETTE_IDS
from hallo_pipeline.hallo.masks import (
    BLUR_MAP_SIZE,
    LEVEL_DIVISORS,
    check_image_size,
    face_region_tensor,
    region_maps,
    token_masks,
)


def synthetic_landmarks(width: int, height: int) -> np.ndarray:
    """A face oval in the middle third of the image and lips in its lower half."""
    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(0.45, 0.55, 478) * width, rng.uniform(0.45, 0.55, 478) * height])
    angles = np.linspace(0, 2 * np.pi, len(SILHOUETTE_IDS), endpoint=False)
    points[list(SILHOUETTE_IDS)] = np.column_stack(
        [(0.5 + 0.17 * np.cos(angles)) * width, (0.5 + 0.22 * np.sin(angles)) * height]
    )
    angles = np.linspace(0, 2 * np.pi, len(LIP_IDS), endpoint=False)
    points[list(LIP_IDS)] = np.column_stack(
        [(0.5 + 0.06 * np.cos(angles)) * width, (0.62 + 0.02 * np.sin(angles)) * height]
    )
    return points


@pytest.mark.parametrize("size", [(640, 480), (333, 517), (512, 512)])
def test_region_maps_relations(size) -> None:
    width, height = size
    maps = region_maps(synthetic_landmarks(width, height), width, height)
    assert maps.face_mask.shape == (height, width) and maps.face_mask.dtype == np.uint8
    x0, y0, x1, y1 = maps.face_box
    assert maps.face_mask[y0:y1, x0:x1].min() == 255 and int(maps.face_mask.sum()) == 255 * (x1 - x0) * (y1 - y0)
    for m in (maps.face_blur, maps.full, maps.face, maps.lip):
        assert m.shape == (BLUR_MAP_SIZE, BLUR_MAP_SIZE) and m.dtype == np.uint8
    assert maps.face_blur.min() == 0 and maps.face_blur.max() == 255  # min-max stretched
    # pose = 255 - face blur, but computed in float then truncated: sometimes one lower.
    complement = maps.full.astype(int) + maps.face_blur.astype(int)
    assert set(np.unique(complement)) <= {254, 255}
    # face = face blur - lip blur, saturating at 0
    expected_face = np.clip(maps.face_blur.astype(int) - maps.lip.astype(int), 0, 255)
    assert np.array_equal(maps.face, expected_face)


@pytest.mark.parametrize("image_size", [64, 256, 512, 768])
def test_token_masks_per_level(image_size: int) -> None:
    maps = region_maps(synthetic_landmarks(640, 480), 640, 480)
    levels = token_masks(maps, image_size)
    assert len(levels) == len(LEVEL_DIVISORS)
    for level, divisor in zip(levels, LEVEL_DIVISORS):
        side = image_size // divisor
        for mask in (level.full, level.face, level.lip):
            assert mask.shape == (1, side * side) and mask.dtype == torch.float32
            assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
            assert torch.equal(torch.round(mask * 255) / 255, mask)  # k / 255 values
    # At the map's own size the resize is the identity: the tokens are the 64x64 map, row-major.
    if image_size == 8 * BLUR_MAP_SIZE:
        assert torch.equal(
            levels[0].lip.reshape(BLUR_MAP_SIZE, BLUR_MAP_SIZE) * 255, torch.from_numpy(maps.lip).float()
        )


def test_token_masks_are_row_major() -> None:
    """A lip box at the image's top-right must light up the first row's right end, not the left column."""
    width = height = 512
    landmarks = synthetic_landmarks(width, height)
    landmarks[list(LIP_IDS)] = landmarks[list(LIP_IDS)] * [0.2, 0.2] + [400, 20]
    levels = token_masks(region_maps(landmarks, width, height), 512)
    lip = levels[0].lip.reshape(64, 64)
    row, col = divmod(int(lip.reshape(-1).argmax()), 64)
    assert row < 16 and col > 48


def test_face_region_has_fractional_border() -> None:
    maps = region_maps(synthetic_landmarks(640, 480), 640, 480)
    region = face_region_tensor(maps.face_mask, 256)
    assert region.shape == (3, 256, 256)
    assert torch.equal(region[0], region[1]) and torch.equal(region[1], region[2])
    values = torch.unique(region[0])
    assert values.min() == 0 and values.max() == 1
    assert ((values > 0) & (values < 1)).any(), "antialiased edges should give fractional values"


@pytest.mark.parametrize("bad", [0, 100, 500, -64, 512.0, "512"])
def test_image_size_must_be_a_multiple_of_64(bad) -> None:
    with pytest.raises(InputError, match="image_size .* multiple of 64"):
        check_image_size(bad)
