"""Segment planning: the rules the command line, the API and the sampler node share."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo.sampling.clip_loop import MotionContext
from hallo_pipeline.hallo.sampling.segments import FrameSegment, plan_segment, stitch


def _segment(start: int, frames: int, total: int = 23) -> FrameSegment:
    return FrameSegment(torch.zeros(frames, 3, 8, 8), start, total, 25, MotionContext(next_clip=(start + frames) // 4))


def test_whole_audio_and_a_first_segment() -> None:
    assert (plan_segment(23, 4).start, plan_segment(23, 4).end, plan_segment(23, 4).context) == (0, 23, None)
    plan = plan_segment(23, 4, end_frame=8)
    assert (plan.start, plan.end, plan.empty) == (0, 8, False)
    assert plan_segment(23, 4, end_frame=100).end == 23


def test_a_continuation_takes_its_start_and_context_from_the_previous_segment() -> None:
    first = _segment(0, 8)
    plan = plan_segment(23, 4, previous=first)
    assert (plan.start, plan.end, plan.context) == (8, 23, first.context)
    assert plan_segment(23, 4, start_frame=8, previous=first).start == 8


def test_after_the_end_of_the_audio_a_segment_is_empty() -> None:
    last = _segment(16, 7)
    assert plan_segment(23, 4, previous=last).empty
    assert plan_segment(23, 4, end_frame=20, previous=last).empty
    assert last.empty_continuation().frames.shape[0] == 0 and last.empty_continuation().start_frame == 23


def test_a_later_start_without_a_previous_segment_starts_from_the_portrait() -> None:
    plan = plan_segment(23, 4, start_frame=12)
    assert plan.start == 12 and plan.context.next_clip == 3 and plan.context.frames is None


@pytest.mark.parametrize(
    ("kwargs", "input", "message"),
    [
        ({"start_frame": 6}, "start_frame", r"start_frame 6 is not a multiple of the clip length 4.*e\.g\. 4 or 8"),
        ({"start_frame": 24}, "start_frame", r"start_frame 24 is past the end of the audio \(23 frames\)"),
        ({"start_frame": -4}, "start_frame", r"start_frame must be a whole number of frames, 0 or more"),
        ({"end_frame": 10}, "end_frame", r"end_frame 10 is not a multiple of the clip length 4.*use 8 or 12"),
        ({"start_frame": 8, "end_frame": 8}, "end_frame", r"end_frame 8 is not after the segment's start"),
        ({"end_frame": 0}, "end_frame", r"end_frame 0 is not after the segment's start"),
        ({"end_frame": 2.5}, "end_frame", r"end_frame must be a whole number"),
        ({"start_frame": 4, "previous": _segment(0, 8)}, "start_frame", r"does not match the previous segment"),
        ({"previous": _segment(0, 6)}, "previous", r"ends at frame 6, inside a clip of 4 frames"),
        ({"previous": _segment(0, 8, total=40)}, "previous", r"belongs to an audio of 40 frames, this audio has 23"),
    ],
)
def test_inconsistent_ranges_name_their_input(kwargs, input, message) -> None:
    with pytest.raises(InputError, match=message) as error:
        plan_segment(23, 4, **kwargs)
    assert error.value.input == input


def test_stitch_orders_segments_and_refuses_gaps() -> None:
    a, b, c = _segment(0, 8), _segment(8, 8), _segment(16, 7)
    assert stitch([c, a, b]).shape[0] == 23
    with pytest.raises(InputError, match="segments do not join: one ends at frame 8, the next starts at 16"):
        stitch([a, c])
    with pytest.raises(InputError, match="no frame segments"):
        stitch([])
