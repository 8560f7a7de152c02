"""Rendering a long audio in pieces: which frames a segment covers, and joining the pieces again.

A segment starts on a clip boundary. It continues a `previous` segment exactly (that segment's
last frames are its motion context, so the joined video equals one uninterrupted run with the
same seed), or, without one, starts from the portrait (a quick look at a later part; there is a
seam). The command line, the Python API and the sampler node all plan segments here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InputError
from ...frames import FrameSegment, stitch  # noqa: F401 - stitch: re-exported where it always was
from .clip_loop import MotionContext


@dataclass(frozen=True)
class SegmentPlan:
    start: int  # first frame to render (a clip boundary)
    end: int  # frame to stop before (at most the audio's length)
    context: MotionContext | None  # the motion context to start from; None = clip 0 from the portrait

    @property
    def empty(self) -> bool:
        """The previous segment already reached the end of the audio."""
        return self.start >= self.end


def plan_segment(
    total_frames: int,
    clip_length: int,
    start_frame: int = 0,
    end_frame: int | None = None,
    previous: FrameSegment | None = None,
) -> SegmentPlan:
    """The frames a segment renders; every inconsistency is an `InputError` naming its argument.

    `end_frame` None renders to the end of the audio; otherwise it must be a multiple of the clip
    length, so that a next segment can continue from it. With `previous`, `start_frame` must be 0
    or the frame where `previous` ends.
    """
    for name, value in (("start_frame", start_frame), ("end_frame", end_frame)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(f"{name} must be a whole number of frames, 0 or more, got {value!r}", name)
    if previous is not None:
        start, context = _continue_from(previous, total_frames, clip_length, start_frame)
    else:
        start, context = _start_at(total_frames, clip_length, start_frame)
    if end_frame is None or end_frame >= total_frames:
        return SegmentPlan(start, total_frames, context)
    if start >= total_frames:
        return SegmentPlan(start, start, context)
    if end_frame <= start:
        raise InputError(
            f"end_frame {end_frame} is not after the segment's start (frame {start}); use a larger value, or "
            "none for the end of the audio", "end_frame",
        )
    if end_frame % clip_length:
        below = end_frame - end_frame % clip_length
        raise InputError(
            f"end_frame {end_frame} is not a multiple of the clip length {clip_length}, so the next segment could not "
            f"continue from it; use {below if below > start else below + clip_length} or {below + clip_length} "
            "(or the end of the audio)", "end_frame",
        )
    return SegmentPlan(start, end_frame, context)


def _continue_from(previous: FrameSegment, total: int, clip: int, start_frame: int) -> tuple[int, MotionContext]:
    if previous.total_frames != total:
        raise InputError(
            f"the previous segment belongs to an audio of {previous.total_frames} frames, this audio has {total}; "
            "continue a segment made from the same audio features", "previous",
        )
    if previous.end_frame % clip and previous.end_frame < total:
        raise InputError(
            f"the previous segment ends at frame {previous.end_frame}, inside a clip of {clip} frames; render it "
            f"with an end_frame that is a multiple of {clip}", "previous",
        )
    if start_frame not in (0, previous.end_frame):
        raise InputError(
            f"start_frame {start_frame} does not match the previous segment, which ends at frame "
            f"{previous.end_frame}; leave start_frame at 0 (it is taken from the previous segment) or do not give one",
            "start_frame",
        )
    return previous.end_frame, previous.context


def _start_at(total: int, clip: int, start_frame: int) -> tuple[int, MotionContext | None]:
    if start_frame >= total:
        raise InputError(
            f"start_frame {start_frame} is past the end of the audio ({total} frames); use a smaller value",
            "start_frame",
        )
    if start_frame % clip:
        below = start_frame - start_frame % clip
        raise InputError(
            f"start_frame {start_frame} is not a multiple of the clip length {clip}; segments start at whole clips "
            f"(e.g. {below} or {below + clip})", "start_frame",
        )
    # A later start without a previous segment begins from the portrait, with the noise of a full run.
    return start_frame, MotionContext(next_clip=start_frame // clip) if start_frame else None
