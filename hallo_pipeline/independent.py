"""Independent segments of a long video (opt-in): a plan that any machine renders a part of, and the join.

The exact mode renders clip after clip, each continuing the last, so one video is one sequential job. Here the
audio is cut into N segments that start like clip 0 (from the portrait), each with its own seed, so N workers
render them at once; neighbours overlap by a few frames, and `join` crossfades them there. Everything is a pure
function of its inputs (no files, no hidden state), so a plan made anywhere renders the same frames everywhere.

    loudness = frame_loudness(waveform, sample_rate)            # RMS per video frame
    plan = plan_segments(loudness, segments=4, clip_length=16, seed=42)
    plan.to_json() / SegmentPlan.from_json(text)               # what workers, the CLI and the nodes share
    # each worker: the family's render of plan.segments[i]    -> FrameSegment over segment.render_range
    frames = join(plan, rendered)                              # crossfaded, trimmed to the audio

Choices (README, "Long videos on several GPUs"):
- A boundary is a clip multiple (the clip loop's audio windows are aligned to them) and is the first frame of
  the next segment; the previous segment renders `overlap` frames past it, and those frames are blended. Each
  boundary starts at the even split and moves to the clip multiple, within `search_window_seconds`, whose blended
  frames are quietest (mean RMS): a cut in a pause hides the pose change, and a speaking mouth is never blended.
- The window: 2 s, because conversational speech pauses (between phrases, for breath) come every 2-4 s, so
  +-2 s almost always holds one; and at most a quarter of a segment, so no worker gets more than 1.5x the
  even share.
- The overlap: one clip (16 frames, 0.64 s) by default. It is the new segment's first clip, the one that starts
  from the portrait's pose, so the fade hides exactly the frames that differ most; each join costs one extra clip.
- Seeds: segment 0 uses the run's seed itself (so N=1, and the first segment of any plan, is the exact
  sequential video's start); segment i > 0 uses the first 64 bits of numpy's `SeedSequence([seed, i])`, a
  documented, platform-independent hash, so any machine derives the same seed from the plan alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .config import CLIP_LENGTH, FPS, SEED
from .errors import InputError
from .frames import FrameSegment

SEARCH_WINDOW_SECONDS = 2.0
PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedSegment:
    index: int
    start: int  # first frame this segment owns (a clip multiple)
    end: int  # frame its ownership stops before (the next segment's start, or the audio's end)
    render_end: int  # frame its render stops before: `end` plus the overlap the next segment blends in
    seed: int

    @property
    def render_range(self) -> tuple[int, int]:
        """(start_frame, end_frame) a family's renderer produces for this segment."""
        return self.start, self.render_end


@dataclass(frozen=True)
class SegmentPlan:
    total_frames: int  # the audio's true length in video frames (the joined video's length)
    clip_length: int
    overlap: int  # frames each boundary's two neighbours both render
    seed: int  # the run's seed the segment seeds derive from
    segments: tuple[PlannedSegment, ...]
    fps: int = FPS

    def __post_init__(self) -> None:
        _check_consistent(self)

    @property
    def boundaries(self) -> list[int]:
        """The first frame of every segment after the first."""
        return [s.start for s in self.segments[1:]]

    def segment(self, index: int) -> PlannedSegment:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.segments):
            raise InputError(
                f"segment index {index!r} is not in this plan of {len(self.segments)} segments; use 0 to "
                f"{len(self.segments) - 1}", "segment_index",
            )
        return self.segments[index]

    def with_seed(self, seed: int) -> "SegmentPlan":
        """The same cuts with the segment seeds of `seed`. The cuts depend on the audio alone, so a plan made
        before the run's seed is known (a ComfyUI graph plans before its sampler runs) takes the sampler's here."""
        SEED.check(seed)
        segments = tuple(replace(s, seed=segment_seed(seed, s.index)) for s in self.segments)
        return replace(self, seed=seed, segments=segments)

    @property
    def render_lengths(self) -> list[int]:
        """Frames each segment renders (its own plus the overlap it hands the next), in plan order."""
        return [s.render_end - s.start for s in self.segments]

    def to_json(self) -> str:
        return json.dumps({"version": PLAN_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SegmentPlan":
        """The plan `to_json` wrote; anything else is an `InputError` naming the plan."""
        try:
            data = json.loads(text)
            if data.pop("version") != PLAN_VERSION:
                raise ValueError(f"plan version is not {PLAN_VERSION}")
            data["segments"] = tuple(PlannedSegment(**s) for s in data["segments"])
            return cls(**data)
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"the segment plan cannot be read ({exc}); use the JSON a plan's to_json wrote, "
                             "made by this version of the pack", "plan") from exc


def segment_seed(seed: int, index: int) -> int:
    """The seed of segment `index`: the run's own for segment 0, else 64 bits of SeedSequence([seed, index])."""
    SEED.check(seed)
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])


def frame_loudness(waveform, sample_rate: int, fps: int = FPS) -> np.ndarray:
    """RMS of the mono 16 kHz speech over each video frame; as many frames as the audio features have
    (ceil(samples / 640)), the last one zero-padded."""
    from .audio.features import frame_count
    from .audio.io import SAMPLE_RATE, to_mono_16k

    mono = to_mono_16k(waveform, sample_rate)
    frames = frame_count(mono.shape[-1], SAMPLE_RATE, fps)
    hop = SAMPLE_RATE // fps
    padded = np.zeros(frames * hop, np.float64)
    padded[: mono.shape[-1]] = mono[: frames * hop]
    return np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1))


def plan_segments(
    loudness,
    segments: int,
    clip_length: int = CLIP_LENGTH.default,
    seed: int = SEED.default,
    overlap: int | None = None,
    search_window_seconds: float = SEARCH_WINDOW_SECONDS,
    fps: int = FPS,
) -> SegmentPlan:
    """Cut an audio of `len(loudness)` video frames into `segments` independent segments (module docstring).

    `loudness`: one value per video frame (`frame_loudness`). `overlap`: frames both neighbours render (default
    one clip; 0 = a hard cut); at most the shortest segment's length, so a frame is blended at most once.
    """
    loudness = np.asarray(loudness, dtype=np.float64)
    if loudness.ndim != 1 or loudness.size == 0 or not np.isfinite(loudness).all():
        raise InputError(f"loudness must be one finite value per video frame, got shape {loudness.shape}",
                         "loudness")
    CLIP_LENGTH.check(clip_length)
    SEED.check(seed)
    total = loudness.size
    overlap = clip_length if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0 or overlap % clip_length:
        raise InputError(f"overlap must be a whole number of clips ({clip_length} frames each), 0 or more, got "
                         f"{overlap!r} frames (a segment's render ends on a clip, like every exact segment)",
                         "overlap")
    most = max(1, total // clip_length)  # every segment owns at least one whole clip
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        raise InputError(f"segments must be a whole number, 1 or more, got {segments!r}", "segments")
    if segments > most:
        raise InputError(
            f"the audio is {total} frames ({total / fps:.2f} s), {most} clip(s) of {clip_length} frames, too short "
            f"for {segments} segments of at least one clip each; use at most {most} segments (or longer audio)",
            "segments",
        )
    window = int(min(search_window_seconds * fps, total / segments / 4))
    starts = [0]
    for k in range(1, segments):
        starts.append(_quietest_boundary(loudness, total * k / segments, window, starts[-1], segments - k,
                                         clip_length, overlap))
    ends = starts[1:] + [total]
    planned = tuple(
        PlannedSegment(i, s, e, min(e + overlap, total) if i < segments - 1 else total, segment_seed(seed, i))
        for i, (s, e) in enumerate(zip(starts, ends))
    )
    return SegmentPlan(total, clip_length, overlap, seed, planned, fps)


def _quietest_boundary(loudness: np.ndarray, even: float, window: int, previous: int, left: int, clip: int,
                       overlap: int) -> int:
    """The clip multiple near `even` whose `overlap` blended frames (or, with no overlap, the frame at the cut)
    are quietest; ties go to the one nearest `even`. It leaves a clip after `previous` and one per segment still
    to come (`left`, this one included) before the end."""
    total = loudness.size
    low = max(previous + clip, -(-int(even - window) // clip) * clip)
    high = min((total - left * clip) // clip * clip, int(even + window) // clip * clip)
    if high < low:  # the window holds no allowed clip multiple: the allowed one nearest the even split
        low = high = min(max(round(even / clip) * clip, previous + clip), (total - left * clip) // clip * clip)
    candidates = np.arange(low, high + 1, clip)
    blended = max(overlap, 1)
    score = np.array([loudness[c : c + blended].mean() for c in candidates])
    order = np.lexsort((np.abs(candidates - even), score))  # quietest first, then nearest the even split
    return int(candidates[order[0]])


def _check_consistent(plan: SegmentPlan) -> None:
    """A plan read from JSON could have been edited: the segments must tile the audio on clip multiples."""
    segs = plan.segments
    if not segs or segs[0].start != 0 or segs[-1].end != plan.total_frames or segs[-1].render_end != plan.total_frames:
        raise InputError("the segment plan does not cover the audio from frame 0 to its end", "plan")
    for i, s in enumerate(segs):
        if s.index != i or s.start % plan.clip_length or s.end <= s.start:
            raise InputError(f"segment {i} of the plan is not a range starting on a clip multiple", "plan")
        if i + 1 < len(segs) and (segs[i + 1].start != s.end or s.render_end != min(s.end + plan.overlap,
                                                                                    plan.total_frames)):
            raise InputError(f"segments {i} and {i + 1} of the plan do not meet with the plan's overlap", "plan")
        if i > 0 and s.end - s.start < plan.overlap:
            raise InputError(f"segment {i} owns {s.end - s.start} frames, fewer than the overlap {plan.overlap}: its "
                             "blend would reach the next join; use a smaller overlap or fewer segments", "overlap")
        if s.seed != segment_seed(plan.seed, i):
            raise InputError(f"segment {i}'s seed is not derived from the plan's seed", "plan")


def crossfade_weights(frames: int) -> np.ndarray:
    """Weight of the next segment on each of `frames` blended frames: smoothstep 3t^2 - 2t^3 at t = (j+1)/(n+1),
    strictly between 0 and 1 (every overlap frame is a real blend) and with zero slope at both ends, so the
    fade starts and stops without a kink in its speed."""
    t = np.arange(1, frames + 1) / (frames + 1)
    return t * t * (3 - 2 * t)


def join(plan: SegmentPlan, rendered: list[FrameSegment]) -> torch.Tensor:
    """The segments of `plan` (any order, one each) as one video in memory; see `join_stream`. Each must cover
    exactly its `render_range`."""
    by_index: dict[int, FrameSegment] = {}
    for part in rendered:
        matches = [s.index for s in plan.segments if s.render_range == (part.start_frame, part.end_frame)]
        if not matches:
            raise InputError(
                f"a segment covers frames {part.start_frame} to {part.end_frame}, which is no segment of the plan "
                f"({[s.render_range for s in plan.segments]}); render each with the same plan", "frames",
            )
        if matches[0] in by_index:
            raise InputError(f"segment {matches[0]} was given twice", "frames")
        by_index[matches[0]] = part
    missing = [s.index for s in plan.segments if s.index not in by_index]
    if missing:
        raise InputError(f"segments {missing} of the plan's {len(plan.segments)} are missing; render them and "
                         "join all together", "frames")
    return torch.cat(list(join_stream(plan, lambda i: [by_index[i].frames])))


def join_collected(plan: SegmentPlan, frames: torch.Tensor) -> torch.Tensor:
    """Every segment's frames one after another in plan order, in one batch (what a collector gathers from the
    machines that rendered them) -> the joined video. Frames may be in any layout with time first."""
    lengths = plan.render_lengths
    if frames.shape[0] != sum(lengths):
        raise InputError(
            f"{frames.shape[0]} frames were given; the plan's {len(lengths)} segments render {lengths} frames "
            f"({sum(lengths)} in all). Give every segment's frames once, in plan order, each rendered with this plan",
            "frames",
        )
    parts = torch.split(frames, lengths)
    return torch.cat(list(join_stream(plan, lambda i: [parts[i]])))


def join_stream(plan: SegmentPlan, frames_of: Callable[[int], Iterable[torch.Tensor]]) -> Iterator[torch.Tensor]:
    """The joined video in plan order, a batch at a time, holding only one overlap in memory (a 10-minute video
    of full-size frames does not fit): segment i's frames come from `frames_of(i)` as batches (N, ...) in
    order; the frames both neighbours render are crossfaded (`crossfade_weights`)."""
    held = None  # the previous segment's frames past its end, to blend with this segment's head
    for seg in plan.segments:
        own = seg.end - seg.start  # frames of this segment that are its own; the rest are the next one's head
        blend = crossfade_weights(0 if held is None else held.shape[0])
        tail, k = [], 0
        for batch in frames_of(seg.index):
            if held is not None and batch.shape[1:] != held.shape[1:]:
                raise InputError(f"segment {seg.index}'s frames are {tuple(batch.shape[1:])}, the previous "
                                 f"segment's {tuple(held.shape[1:])}; render every segment with the same portrait, "
                                 "model and options", "frames")
            lo, hi = k, k + batch.shape[0]
            if lo < blend.size:  # the head: faded in over the previous segment's tail
                n = min(hi, blend.size) - lo
                w = torch.as_tensor(blend[lo : lo + n], dtype=batch.dtype).view(-1, *[1] * (batch.dim() - 1))
                yield (1 - w) * held[lo : lo + n] + w * batch[:n]
            if max(lo, blend.size) < min(hi, own):
                yield batch[max(lo, blend.size) - lo : min(hi, own) - lo]
            if hi > own:
                tail.append(batch[max(own - lo, 0) :])
            k = hi
        if k != seg.render_end - seg.start:
            raise InputError(f"segment {seg.index} holds {k} frames, its plan {seg.render_end - seg.start}; "
                             "render it again with this plan", "frames")
        held = torch.cat(tail) if tail else None


def seam_ratio(frames: torch.Tensor, plan: SegmentPlan) -> float:
    """How visible the joins are: the largest frame-to-frame change (mean absolute pixel difference) across a
    join's blend, entering and leaving it included, over the median frame-to-frame change of the whole video.
    About 1: a join moves no more than an ordinary frame; a hard cut between unrelated frames is many times it."""
    if frames.shape[0] < 2 or len(plan.segments) < 2:
        raise InputError("the seam needs a joined video of two or more segments", "frames")
    change = (frames[1:].float() - frames[:-1].float()).abs().flatten(1).mean(1).numpy()  # change[t]: t -> t+1
    at_joins = [change[max(s.start - 1, 0) : plan.segments[s.index - 1].render_end].max() for s in plan.segments[1:]]
    return float(max(at_joins) / max(np.median(change), 1e-12))
