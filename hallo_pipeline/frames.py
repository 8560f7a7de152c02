"""Generated frames as every family hands them out (node type HALLO_FRAMES), and joining segments of them.

A family renders a video, or a frame range of it, as a `FrameSegment`; `stitch` joins segments in frame order.
What a segment needs to be continued (the last frames, a noise state) is the family's own `context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError


@dataclass
class FrameSegment:
    frames: torch.Tensor  # (N, 3, H, W) float32 in [0, 1], CPU
    start_frame: int  # index of frames[0] in the whole video
    total_frames: int  # frames the whole audio needs (its true length)
    fps: int
    context: Any  # the family's state to continue the next segment from (None where it cannot be continued)

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames.shape[0]

    def empty_continuation(self) -> "FrameSegment":
        """No frames, starting where this one ends (what a segment after the end of the audio is)."""
        return FrameSegment(self.frames[:0], self.end_frame, self.total_frames, self.fps, self.context)


def stitch(segments: list[FrameSegment]) -> torch.Tensor:
    """Concatenate segments in frame order; they must tile the range without gaps or overlaps, and have one
    frame size."""
    if not segments:
        raise InputError("no frame segments to stitch", "frames")
    ordered = sorted(segments, key=lambda s: s.start_frame)
    for a, b in zip(ordered, ordered[1:]):
        if b.start_frame != a.end_frame:
            raise InputError(
                f"segments do not join: one ends at frame {a.end_frame}, the next starts at {b.start_frame}", "frames"
            )
    sizes = {tuple(s.frames.shape[1:]) for s in ordered if s.frames.shape[0]}
    if len(sizes) > 1:
        raise InputError(f"segments of different frame sizes cannot be joined: {sorted(sizes)}; render every "
                         "segment with the same portrait and model", "frames")
    return torch.cat([s.frames for s in ordered])
