"""HalloSegmentPlan -> HalloSampler (plan, segment_index) -> HalloVideoStitch -> HalloSegmentJoin, as a
ComfyUI-Distributed graph runs them (each participant one segment, the collector's batch in plan order), against
the library's plan, segment renders and join on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.nodes.test_generation_nodes import _face, _sample

CLIP, SR = 4, 16000


def _speech() -> dict:
    """1.5 s of voiced sound with a pause over 0.66-0.95 s (frames 16.5-23.75)."""
    t = np.arange(int(1.5 * SR)) / SR
    voice = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 180 * t)
    voice[int(0.66 * SR) : int(0.95 * SR)] = 0.0
    return {"waveform": torch.from_numpy(voice.astype(np.float32)).reshape(1, 1, -1), "sample_rate": SR}


@pytest.fixture(scope="module")
def track():
    return _speech()


@pytest.fixture(scope="module")
def hallo_audio(run, pipeline, track):
    (embedded, _, _) = run("HalloAudioEmbed", pipeline=pipeline, audio=track, separate_vocals=False, mode="auto",
                           clip_length=CLIP)
    return embedded


def test_the_plan_node_cuts_in_the_pause_like_the_command_line(run, hallo_audio, track) -> None:
    independent = run.env.module("hallo_pipeline.independent")
    (plan,) = run("HalloSegmentPlan", hallo_audio=hallo_audio, segments=2, overlap_clips=1)
    loudness = independent.frame_loudness(track["waveform"][0].numpy(), SR)
    assert plan == independent.plan_segments(loudness, 2, clip_length=CLIP)  # what `animate --segments 2` plans
    assert plan.boundaries == [20] and plan.render_lengths == [24, 18]
    errors = run.env.module("hallo_pipeline.errors")
    with pytest.raises(errors.InputError, match="HalloSegmentPlan input 'segments': .*at most 9 segments"):
        run("HalloSegmentPlan", hallo_audio=hallo_audio, segments=12, overlap_clips=0)
    with pytest.raises(errors.InputError, match="HalloSegmentPlan input 'overlap_clips'"):
        run("HalloSegmentPlan", hallo_audio=hallo_audio, segments=3, overlap_clips=4)


@pytest.mark.slow  # four segment renders: about 6 s
def test_each_participant_renders_its_segment_and_the_join_matches_the_library(run, pipeline, hallo_audio,
                                                                               track) -> None:
    env = run.env
    independent = env.module("hallo_pipeline.independent")
    render_segment = env.module("hallo_pipeline.hallo.independent").render_segment
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    (plan,) = run("HalloSegmentPlan", hallo_audio=hallo_audio, segments=2, overlap_clips=1)
    seed = 11
    stitched = []
    for index in (1, 0):  # workers finish in any order; the collector orders them by participant
        segment = _sample(run, pipeline, reference, hallo_audio, plan=plan, segment_index=index, seed=seed)
        assert (segment.start_frame, segment.end_frame) == plan.with_seed(seed).segments[index].render_range
        images, _, _, _ = run("HalloVideoStitch", frames=segment, audio=track, fps=25.0)
        stitched.insert(0, images)
    settings = pipeline.settings("hallo", steps=2, guidance_scale=3.5, seed=seed, clip_length=CLIP)
    alone = [render_segment(pipeline, reference, hallo_audio.features, settings, plan.with_seed(seed), i)
             for i in (0, 1)]
    for part in alone:  # the sampler hands segments on in 8-bit levels, as a segment file holds them
        part.frames = (part.frames * 255).round() / 255
    for images, part in zip(stitched, alone):
        torch.testing.assert_close(images, part.frames.permute(0, 2, 3, 1), rtol=0, atol=0)

    collected = torch.cat(stitched)  # Distributed Collector: the master's segment 0, then worker 1's segment 1
    images, cut, video, fps = run("HalloSegmentJoin", segment_images=collected, plan=plan, audio=track, fps=25.0)
    assert images.shape[0] == hallo_audio.frames == 38 and fps == 25.0
    torch.testing.assert_close(images, independent.join(plan.with_seed(seed), alone).permute(0, 2, 3, 1),
                               rtol=0, atol=1e-6)
    assert cut["waveform"].shape[-1] == 38 * SR // 25 and video.get_components().images is images

    errors = env.module("hallo_pipeline.errors")
    with pytest.raises(errors.InputError, match=r"24 frames arrived.*\[24, 18\].*first 1 segment\(s\)"):
        run("HalloSegmentJoin", segment_images=stitched[0], plan=plan, audio=track, fps=25.0)


@pytest.mark.parametrize("overrides, message", [
    ({"segment_index": 1}, "input 'segment_index': 1 picks a segment of a plan, and no plan is connected"),
    ({"plan": "PLAN", "end_frame": 8}, "input 'end_frame': with a plan connected"),
    ({"plan": "PLAN", "segment_index": 2}, "input 'segment_index': segment index 2 is not in this plan of 2"),
])
def test_segment_inputs_that_contradict_each_other_are_refused_by_name(run, pipeline, hallo_audio, overrides,
                                                                        message) -> None:
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(run.env))
    if overrides.get("plan") == "PLAN":
        (overrides["plan"],) = run("HalloSegmentPlan", hallo_audio=hallo_audio, segments=2, overlap_clips=1)
    errors = run.env.module("hallo_pipeline.errors")
    with pytest.raises(errors.InputError, match=message):
        _sample(run, pipeline, reference, hallo_audio, **overrides)
