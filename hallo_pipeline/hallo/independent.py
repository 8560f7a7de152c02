"""Rendering one independent segment (`hallo_pipeline.independent`) with the Hallo clip loop.

A segment starts like clip 0: the portrait is its motion frames, and the noise is the segment's own seed's
stream from its first clip on. Its clips stay on the audio's global clip grid (the audio windows are the
exact video's), and it renders its planned range plus the overlap the next segment fades in over.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import torch

from ..config import FPS
from ..errors import InputError
from ..frames import FrameSegment
from ..independent import SegmentPlan
from .sampling.clip_loop import MotionContext, SamplerSettings


def segment_start(plan: SegmentPlan, index: int, audio, settings: SamplerSettings) -> tuple[SamplerSettings, dict]:
    """The settings and `iter_clips` range arguments that render segment `index` of `plan` from the portrait."""
    seg = plan.segment(index)
    if plan.clip_length != settings.clip_length:
        raise InputError(f"the plan cuts clips of {plan.clip_length} frames, the sampler renders "
                         f"{settings.clip_length}; plan with the clip length the sampler uses", "clip_length")
    if plan.total_frames != audio.frames:
        raise InputError(f"the plan is for an audio of {plan.total_frames} frames, this audio has {audio.frames}; "
                         "plan from the same audio", "plan")
    if plan.seed != settings.seed:
        raise InputError(f"the plan derives its segments' seeds from seed {plan.seed}, the settings hold "
                         f"{settings.seed}; plan with the run's seed", "seed")
    first_clip = seg.start // plan.clip_length
    # An empty "previous segment" at the segment's start whose context has no frames: the loop then takes the
    # portrait as the motion frames, as for clip 0, and draws the noise of the segment's own seed from here on.
    fresh = FrameSegment(torch.zeros(0), seg.start, audio.frames, FPS, MotionContext(first_clip, None, first_clip))
    return dataclasses.replace(settings, seed=seg.seed), {"previous": fresh, "end_frame": seg.render_end}


def iter_segment(pipeline, reference, audio, settings: SamplerSettings, plan: SegmentPlan, index: int,
                 **kwargs) -> Iterator[tuple[torch.Tensor, MotionContext, int]]:
    """`HalloPipeline.iter_clips` over segment `index` of `plan` (kwargs: progress, should_cancel)."""
    seeded, frame_range = segment_start(plan, index, audio, settings)
    yield from pipeline.iter_clips(reference, audio, seeded, **frame_range, **kwargs)


def render_segment(pipeline, reference, audio, settings: SamplerSettings, plan: SegmentPlan, index: int,
                   **kwargs) -> FrameSegment:
    """All frames of segment `index` of `plan` in memory, over its `render_range`."""
    seeded, frame_range = segment_start(plan, index, audio, settings)
    return pipeline.sample(reference, audio, seeded, **frame_range, **kwargs)
