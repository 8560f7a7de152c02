"""The independent-segment plan, the crossfade join and the seam figure (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.frames import FrameSegment
from hallo_pipeline.independent import (
    SegmentPlan,
    crossfade_weights,
    frame_loudness,
    join,
    join_collected,
    plan_segments,
    seam_ratio,
    segment_seed,
)

SR = 16000


def _speech_with_pauses(seconds: float, pauses: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Syllable-like voiced sound (a 180 Hz tone under a 4 Hz envelope, plus noise) with silent spans."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)
    voice = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * tone
    for a, b in pauses:
        voice[int(a * SR) : int(b * SR)] = 0.0
    return voice.astype(np.float32)


def test_loudness_is_rms_per_video_frame() -> None:
    wave = np.concatenate([np.full(640, 0.5), np.zeros(640), np.full(100, -0.2)]).astype(np.float32)
    loud = frame_loudness(wave, SR)
    np.testing.assert_allclose(loud, [0.5, 0.0, np.sqrt(100 * 0.04 / 640)], rtol=1e-6)
    assert frame_loudness(np.repeat(wave[None], 2, 0), SR).shape == (3,)  # channels averaged


def test_boundaries_are_clip_multiples_moved_into_the_pauses() -> None:
    # 24 s, three cuts; the even splits (frames 150, 300, 450) are mid-speech; each has a 0.9 s pause 22 to 36
    # frames away, inside the search window (a quarter segment: 37 frames); one clip of it is at the
    # even split's side.
    pauses = [(4.9, 5.8), (13.3, 14.2), (16.6, 17.5)]
    loud = frame_loudness(_speech_with_pauses(24.0, pauses), SR)
    plan = plan_segments(loud, 4, clip_length=16, seed=7)
    assert len(plan.segments) == 4 and plan.total_frames == 600
    assert plan.boundaries == [128, 336, 416]
    for b, (a, z) in zip(plan.boundaries, pauses):
        assert b % 16 == 0
        assert a * 25 <= b and b + plan.overlap <= z * 25, (b, a, z)  # every blended frame in the pause
        assert loud[b : b + plan.overlap].max() == 0.0
    for s in plan.segments:
        assert s.end - s.start >= 16
    assert plan.segments[-1].render_end == 600
    assert [s.render_end for s in plan.segments[:-1]] == [b + 16 for b in plan.boundaries]


def test_without_pauses_the_boundaries_stay_at_the_even_split() -> None:
    plan = plan_segments(np.ones(320), 4, clip_length=16)
    assert plan.boundaries == [80, 160, 240]
    plan = plan_segments(np.ones(330), 3, clip_length=16)
    assert plan.boundaries == [112, 224]  # the clip multiples nearest 110 and 220


def test_one_segment_is_the_sequential_video() -> None:
    plan = plan_segments(np.ones(23), 1, clip_length=4, seed=5)
    (only,) = plan.segments
    assert (only.start, only.end, only.render_end, only.seed) == (0, 23, 23, 5)


def test_seeds_are_derived_from_seed_and_index() -> None:
    plan = plan_segments(np.ones(200), 4, clip_length=16, seed=42)
    assert [s.seed for s in plan.segments] == [segment_seed(42, i) for i in range(4)]
    assert plan.segments[0].seed == 42 and len({s.seed for s in plan.segments}) == 4
    # a pinned value: SeedSequence's hash is platform independent, so this holds on every machine
    assert segment_seed(42, 1) == int(np.random.SeedSequence([42, 1]).generate_state(1, np.uint64)[0])
    assert segment_seed(42, 1) != segment_seed(43, 1)


def test_a_plan_survives_json_and_refuses_edits() -> None:
    plan = plan_segments(frame_loudness(_speech_with_pauses(6.0, [(2.0, 2.6)]), SR), 2, clip_length=8, seed=3)
    assert SegmentPlan.from_json(plan.to_json()) == plan
    edited = plan.to_json().replace(f'"start": {plan.boundaries[0]}', f'"start": {plan.boundaries[0] + 1}')
    with pytest.raises(InputError) as error:
        SegmentPlan.from_json(edited)
    assert error.value.input == "plan"
    with pytest.raises(InputError, match="cannot be read"):
        SegmentPlan.from_json("{}")


@pytest.mark.parametrize(
    ("kwargs", "input", "message"),
    [
        ({"segments": 0}, "segments", "1 or more"),
        ({"segments": 2.0}, "segments", "whole number"),
        ({"segments": 7}, "segments", r"too short for 7 segments.*at most 6 segments"),
        ({"segments": 2, "overlap": 5}, "overlap", "whole number of clips"),
        ({"segments": 2, "overlap": 64}, "overlap", "fewer than the overlap"),
        ({"segments": 2, "clip_length": 1}, "clip_length", "clip_length"),
    ],
)
def test_bad_segments_and_short_audio_name_their_input(kwargs, input, message) -> None:
    with pytest.raises(InputError, match=message) as error:
        plan_segments(np.ones(100), **{"clip_length": 16, **kwargs})  # 100 frames: 6 clips
    assert error.value.input == input


def test_the_plan_refuses_a_segment_index_outside_it() -> None:
    plan = plan_segments(np.ones(100), 2, clip_length=16)
    with pytest.raises(InputError, match="use 0 to 1") as error:
        plan.segment(2)
    assert error.value.input == "segment_index"


def _constant_segments(plan: SegmentPlan) -> list[FrameSegment]:
    """Segment i is every pixel = i + 1, so each joined frame shows its blend weights."""
    return [FrameSegment(torch.full((s.render_end - s.start, 3, 2, 2), float(s.index + 1)), s.start,
                         plan.total_frames, 25, None) for s in plan.segments]


def test_join_crossfades_the_overlap_and_keeps_the_rest() -> None:
    plan = plan_segments(np.ones(100), 3, clip_length=8)  # boundaries 32 and 64, overlap 8
    parts = _constant_segments(plan)
    video = join(plan, parts[::-1])  # any order
    assert video.shape == (100, 3, 2, 2)
    value = video[:, 0, 0, 0].numpy()
    w = crossfade_weights(8)
    np.testing.assert_allclose(value[:32], 1.0)
    np.testing.assert_allclose(value[32:40], 1 + w, rtol=1e-6)  # 1 * (1 - w) + 2 * w
    np.testing.assert_allclose(value[40:64], 2.0)
    np.testing.assert_allclose(value[64:72], 2 + w, rtol=1e-6)
    np.testing.assert_allclose(value[72:], 3.0)
    assert 0 < w[0] < w[-1] < 1 and np.all(np.diff(w) > 0)
    np.testing.assert_allclose(w + w[::-1], 1.0)  # symmetric: the fade out mirrors the fade in
    with pytest.raises(InputError, match=r"segments \[1\] .* are missing"):
        join(plan, [parts[0], parts[2]])
    with pytest.raises(InputError, match="no segment of the plan"):
        join(plan, [parts[0], FrameSegment(parts[1].frames[:-1], 32, 100, 25, None), parts[2]])


def test_seam_ratio_sees_a_hard_cut_and_not_a_smooth_join() -> None:
    plan = plan_segments(np.ones(64), 2, clip_length=8, overlap=0)
    ramp = torch.arange(64, dtype=torch.float32).view(-1, 1, 1, 1).expand(64, 3, 4, 4) / 100
    assert seam_ratio(ramp, plan) == pytest.approx(1.0)  # the join moves like every other frame
    cut = ramp.clone()
    cut[plan.boundaries[0] :] += 0.2  # a jump of 20 ordinary steps at the cut
    assert seam_ratio(cut, plan) == pytest.approx(21.0, rel=1e-5)
    with pytest.raises(InputError):
        seam_ratio(ramp, plan_segments(np.ones(64), 1, clip_length=8))


def test_with_seed_keeps_the_cuts_and_derives_the_seeds_as_planning_with_that_seed() -> None:
    loudness = frame_loudness(_speech_with_pauses(12.0, [(3.2, 3.6), (7.9, 8.4)]), SR)
    unseeded = plan_segments(loudness, 3)  # as a graph plans before its sampler's seed is known
    assert unseeded.with_seed(7) == plan_segments(loudness, 3, seed=7)
    assert unseeded.with_seed(7).boundaries == unseeded.boundaries
    assert unseeded.with_seed(7).render_lengths == [s.render_end - s.start for s in unseeded.segments]
    with pytest.raises(InputError) as error:
        unseeded.with_seed(-1)
    assert error.value.input == "seed"


def test_join_collected_splits_one_batch_in_plan_order_and_says_what_is_missing() -> None:
    plan = plan_segments(np.ones(100), 3, clip_length=8)
    parts = _constant_segments(plan)
    collected = torch.cat([p.frames for p in parts])  # what a collector gathers: segment 0's frames first
    torch.testing.assert_close(join_collected(plan, collected), join(plan, parts), rtol=0, atol=0)
    images = collected.permute(0, 2, 3, 1)  # any layout with time first (ComfyUI's IMAGE)
    torch.testing.assert_close(join_collected(plan, images), join(plan, parts).permute(0, 2, 3, 1), rtol=0, atol=0)
    with pytest.raises(InputError, match=r"72 frames were given; the plan's 3 segments render \[40, 40, 36\]"):
        join_collected(plan, collected[:72])
