"""Independent segments rendered by the Hallo pipeline on the tiny model: determinism, N=1, the join's seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo.independent import render_segment
from hallo_pipeline.hallo.pipeline import HalloPipeline
from hallo_pipeline.independent import crossfade_weights, frame_loudness, join, plan_segments, seam_ratio

SIZE, CLIP = 128, 4


def _speech(seconds: float, pause: tuple[float, float], sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    voice = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 180 * t)
    voice[int(pause[0] * sr) : int(pause[1] * sr)] = 0.0
    return voice.astype(np.float32)[None]


@pytest.fixture(scope="module")
def pipeline(tiny_model_folder):
    return HalloPipeline.load(tiny_model_folder, device="cpu")


@pytest.fixture(scope="module")
def reference(pipeline, portrait_path):
    return pipeline.prepare_reference(pipeline.analyze_face(portrait_path, image_size=SIZE), image_rows=True)


@pytest.fixture(scope="module")
def speech():
    return _speech(1.5, (0.66, 0.95)), 16000  # 38 frames; a pause over frames 16.5-23.75


@pytest.fixture(scope="module")
def audio(pipeline, speech):
    return pipeline.encode_audio(*speech, clip_length=CLIP)


@pytest.fixture(scope="module")
def settings(pipeline):
    return pipeline.settings(steps=2, clip_length=CLIP, seed=11)


@pytest.fixture(scope="module")
def exact(pipeline, reference, audio, settings):
    """The default, sequential video."""
    return pipeline.sample(reference, audio, settings).frames


@pytest.mark.slow  # a whole exact render beside the segment's: about 7 s
def test_one_segment_is_the_exact_sequential_video(pipeline, reference, audio, settings, speech, exact) -> None:
    plan = plan_segments(frame_loudness(*speech), 1, clip_length=CLIP, seed=settings.seed)
    alone = render_segment(pipeline, reference, audio, settings, plan, 0)
    torch.testing.assert_close(alone.frames, exact, rtol=0, atol=0)


def test_segments_render_identically_in_any_order_and_join_at_the_pause(
    pipeline, reference, audio, settings, speech, exact
) -> None:
    plan = plan_segments(frame_loudness(*speech), 2, clip_length=CLIP, seed=settings.seed)
    assert plan.boundaries == [20] and plan.segments[0].render_range == (0, 24)  # the blend [20, 24) is silent
    backwards = [render_segment(pipeline, reference, audio, settings, plan, i) for i in (1, 0)]
    again = render_segment(pipeline, reference, audio, settings, plan, 1)  # now after segment 0
    torch.testing.assert_close(again.frames, backwards[0].frames, rtol=0, atol=0)
    forwards = backwards[::-1]
    assert (forwards[1].start_frame, forwards[1].end_frame) == (20, 38)
    # segment 0 is the exact video's beginning; segment 1 is not the exact video's continuation
    torch.testing.assert_close(forwards[0].frames, exact[:24], rtol=0, atol=0)
    assert not torch.equal(forwards[1].frames, exact[20:])
    video = join(plan, backwards)
    assert video.shape == exact.shape
    torch.testing.assert_close(video[:20], exact[:20], rtol=0, atol=0)
    torch.testing.assert_close(video[24:], forwards[1].frames[4:], rtol=0, atol=0)
    w = torch.as_tensor(crossfade_weights(4), dtype=torch.float32).view(-1, 1, 1, 1)
    torch.testing.assert_close(video[20:24], (1 - w) * forwards[0].frames[20:] + w * forwards[1].frames[:4])
    print(f"seam ratio (tiny model, 2 segments, smoothstep over {plan.overlap} frames): {seam_ratio(video, plan):.2f}")


def test_a_plan_for_other_audio_or_settings_is_refused(pipeline, reference, audio, settings) -> None:
    with pytest.raises(InputError, match="plan from the same audio"):
        render_segment(pipeline, reference, audio, settings, plan_segments(np.ones(40), 2, clip_length=CLIP,
                                                                           seed=settings.seed), 0)
    with pytest.raises(InputError, match="clip length") as error:
        render_segment(pipeline, reference, audio, settings, plan_segments(np.ones(38), 2, clip_length=8,
                                                                           seed=settings.seed), 0)
    assert error.value.input == "clip_length"
    with pytest.raises(InputError, match="seed") as error:
        render_segment(pipeline, reference, audio, settings, plan_segments(np.ones(38), 2, clip_length=CLIP), 0)
    assert error.value.input == "seed"


@pytest.mark.slow  # two segment renders: about 5 s
def test_sample_segment_renders_a_plan_made_before_the_seed_with_the_settings_seed(
    pipeline, reference, audio, settings, speech
) -> None:
    """What the sampler node calls: its graph plans before the seed is known."""
    unseeded = plan_segments(frame_loudness(*speech), 2, clip_length=CLIP)
    assert unseeded.seed != settings.seed
    got = pipeline.sample_segment(reference, audio, settings, unseeded, 1)
    want = render_segment(pipeline, reference, audio, settings, unseeded.with_seed(settings.seed), 1)
    assert (got.start_frame, got.end_frame) == (20, 38)
    torch.testing.assert_close(got.frames, (want.frames * 255).round() / 255, rtol=0, atol=0)  # 8-bit levels
    assert not torch.equal(got.frames, want.frames)
    with pytest.raises(InputError, match="not by a text prompt"):
        pipeline.sample_segment(reference, audio, settings, unseeded, 1, prompt="a person talking")
