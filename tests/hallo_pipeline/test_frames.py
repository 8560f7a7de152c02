"""Joining generated segments (frames.py), whatever family made them."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.frames import FrameSegment, stitch


def _segment(start: int, count: int, height: int = 4, width: int = 6) -> FrameSegment:
    frames = torch.arange(count, dtype=torch.float32)[:, None, None, None].expand(count, 3, height, width) + start
    return FrameSegment(frames, start, 100, 25, None)


def test_segments_join_in_frame_order() -> None:
    joined = stitch([_segment(5, 3), _segment(0, 5), _segment(8, 0)])
    assert joined[:, 0, 0, 0].tolist() == list(range(8))


def test_segments_of_another_frame_size_are_refused() -> None:
    with pytest.raises(InputError, match=r"different frame sizes .*\(3, 4, 6\).*\(3, 8, 8\)") as caught:
        stitch([_segment(0, 2), _segment(2, 2, 8, 8)])
    assert caught.value.input == "frames"
