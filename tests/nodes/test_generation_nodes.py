"""HalloReferenceEncode, HalloSampler and HalloVideoStitch run against the stand-in
ComfyUI with the tiny networks (a synthetic face analysis and audio features stand in for the
preprocessing nodes, whose own tests run the real models)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch

SIZE, CLIP, FRAMES = 64, 4, 10  # 10 frames of audio -> 3 clips, the last one trimmed


def _face(env):
    RegionMasks = env.module("hallo_pipeline.hallo.models").RegionMasks
    g = torch.Generator().manual_seed(1)
    face_region = torch.zeros(3, SIZE, SIZE)
    face_region[:, 16:48, 20:44] = 1.0
    return SimpleNamespace(
        embedding=torch.randn(512, generator=g), face_region=face_region,
        masks=[RegionMasks(*(torch.rand(1, (SIZE // 8 >> i) ** 2, generator=g) for _ in range(3))) for i in range(4)],
        reference_image=torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1,
    )


def _audio(env, pipeline, frames=FRAMES, mode="hallo", seconds=None):
    ap = pipeline.net.config.audioproj
    padded = -(-frames // CLIP) * CLIP
    features = torch.randn(padded, ap.window, ap.layers, ap.channels, generator=torch.Generator().manual_seed(2))
    EmbeddedAudio = env.module("nodes.audio_embed").EmbeddedAudio
    return EmbeddedAudio(SimpleNamespace(features=features, frames=frames), CLIP, mode, seconds or frames / 25)


def _sample(run, pipeline, reference, audio, **overrides):
    inputs = dict(pipeline=pipeline, reference=reference, audio=audio, pose_weight=1.0, face_weight=1.0, lip_weight=1.0,
                  steps=2, cfg=3.5, seed=11, mode="auto", start_frame=0, end_frame=0)
    (segment,) = run("HalloSampler", **{**inputs, **overrides})
    return segment


def test_reference_is_encoded_once_and_reused_by_every_run(run, pipeline) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    rows = reference.image_rows
    assert rows is not None and all(r.shape[0] == 2 for r in rows)
    audio = _audio(env, pipeline)
    first = _sample(run, pipeline, reference, audio)
    again = _sample(run, pipeline, reference, audio)
    assert reference.image_rows is rows  # the cached output keeps the same rows across clips and runs
    assert first.frames.shape == (FRAMES, 3, SIZE, SIZE) and torch.equal(first.frames, again.frames)
    # the sampler takes the portrait's rows from the reference instead of running the ReferenceNet again
    reference.image_rows = [torch.zeros_like(r) for r in rows]
    assert not torch.allclose(_sample(run, pipeline, reference, audio).frames, first.frames, atol=1e-3), "rows unused"


def test_segments_continue_seamlessly_and_stitch_with_audio(run, pipeline) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    audio = _audio(env, pipeline)
    whole = _sample(run, pipeline, reference, audio)
    head = _sample(run, pipeline, reference, audio, end_frame=CLIP)
    tail = _sample(run, pipeline, reference, audio, previous=head)
    assert (head.start_frame, head.end_frame, tail.start_frame, tail.end_frame) == (0, CLIP, CLIP, FRAMES)

    sr = 16000
    track = {"waveform": torch.linspace(-1, 1, sr).reshape(1, 1, sr), "sample_rate": sr}
    images, cut, video, fps = run("HalloVideoStitch", frames=tail, audio=track, fps=25.0, frames_2=head)
    assert fps == 25.0 and isinstance(fps, float)  # for Create Video / Video Combine
    torch.testing.assert_close(images, whole.frames.permute(0, 2, 3, 1), rtol=0, atol=1e-6)
    assert images.shape == (FRAMES, SIZE, SIZE, 3) and images.dtype == torch.float32
    assert cut["sample_rate"] == sr and cut["waveform"].shape == (1, 1, FRAMES * sr // 25)
    assert torch.equal(cut["waveform"], track["waveform"][..., : FRAMES * sr // 25])
    assert video.get_components().images is images and video.get_components().audio is cut

    _, cut_tail, _, _ = run("HalloVideoStitch", frames=tail, audio=track, fps=25.0)
    start = CLIP * sr // 25
    assert torch.equal(cut_tail["waveform"], track["waveform"][..., start : start + (FRAMES - CLIP) * sr // 25])


def test_a_segment_after_the_end_of_the_audio_is_empty(run, pipeline) -> None:
    """So the long-audio example (a first segment of 1504 frames, then the rest) also runs on short audio."""
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    audio = _audio(env, pipeline)
    whole = _sample(run, pipeline, reference, audio, end_frame=1504)
    rest = _sample(run, pipeline, reference, audio, previous=whole)
    assert rest.frames.shape == (0, 3, SIZE, SIZE) and rest.start_frame == whole.end_frame == FRAMES
    track = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    images, _, _, _ = run("HalloVideoStitch", frames=whole, audio=track, fps=25.0, frames_2=rest)
    assert torch.equal(images, whole.frames.permute(0, 2, 3, 1))


def test_a_later_start_without_previous_begins_from_the_portrait(run, pipeline) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    audio = _audio(env, pipeline)
    tail = _sample(run, pipeline, reference, audio, start_frame=CLIP)
    assert (tail.start_frame, tail.frames.shape[0]) == (CLIP, FRAMES - CLIP)


def test_progress_per_step_and_cancel_mid_clip(run, pipeline) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    audio = _audio(env, pipeline)
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append((value, total))
        if value == 3:  # the user presses Cancel during the second clip
            env.mm.interrupt_current_processing()

    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(env.mm.InterruptProcessingException):
            _sample(run, pipeline, reference, audio)
    finally:
        utils.set_progress_bar_global_hook(None)
    assert seen == [(1, 6), (2, 6), (3, 6)]  # 3 clips x 2 steps; stopped inside clip 1


def test_the_sampler_shows_previews_of_the_clip_when_comfyui_asks(run, pipeline) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    cli = importlib.import_module("comfy.cli_args")
    seen = []
    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, preview)))
    try:
        cli.args.preview_method = cli.LatentPreviewMethod.Latent2RGB
        _sample(run, pipeline, reference, _audio(env, pipeline))
    finally:
        utils.set_progress_bar_global_hook(None)
        cli.args.preview_method = cli.LatentPreviewMethod.NoPreviews
    images = [preview for _, preview in seen if preview is not None]
    assert [value for value, _ in seen] == list(range(1, 7)) and seen[0][1] is not None  # the first step at once
    assert all(kind == "JPEG" and image.size == (SIZE // 8, SIZE // 8) for kind, image, _ in images)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start_frame": 2}, r"HalloSampler input 'start_frame': start_frame 2 is not a multiple of the clip length 4"),
        ({"start_frame": 12}, r"HalloSampler input 'start_frame': start_frame 12 is past the end"),
        ({"end_frame": 6}, r"HalloSampler input 'end_frame': end_frame 6 is not a multiple .* use 4 or 8"),
        ({"start_frame": 4, "end_frame": 4}, r"HalloSampler input 'end_frame': end_frame 4 is not after"),
    ],
)
def test_bad_frame_ranges_name_the_input_and_the_fix(run, pipeline, overrides, message) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    with pytest.raises(env.module("hallo_pipeline.errors").InputError, match=message):
        _sample(run, pipeline, reference, _audio(env, pipeline), **overrides)


def test_previous_must_belong_to_the_same_audio_and_the_modes_must_agree_on_long_audio(run, pipeline) -> None:
    env = run.env
    InputError = env.module("hallo_pipeline.errors").InputError
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    head = _sample(run, pipeline, reference, _audio(env, pipeline), end_frame=CLIP)
    with pytest.raises(InputError, match=r"HalloSampler input 'previous': .* 10 frames, this audio has 12"):
        _sample(run, pipeline, reference, _audio(env, pipeline, frames=12), previous=head)
    with pytest.raises(InputError, match=r"HalloSampler input 'start_frame': start_frame 8 does not match"):
        _sample(run, pipeline, reference, _audio(env, pipeline), previous=head, start_frame=8)
    long_audio = _audio(env, pipeline, seconds=75.0)
    with pytest.raises(InputError, match=r"HalloSampler input 'mode': mode 'hallo2' differs .* same mode"):
        _sample(run, pipeline, reference, long_audio, mode="hallo2")
    assert _sample(run, pipeline, reference, _audio(env, pipeline), mode="hallo2").frames.shape[0] == FRAMES


def test_stitch_refuses_gaps_and_audio_batches(run, pipeline) -> None:
    env = run.env
    InputError = env.module("hallo_pipeline.errors").InputError
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    audio = _audio(env, pipeline)
    head = _sample(run, pipeline, reference, audio, end_frame=CLIP)
    tail = _sample(run, pipeline, reference, audio, start_frame=2 * CLIP)
    track = {"waveform": torch.zeros(1, 2, 16000), "sample_rate": 16000}
    with pytest.raises(InputError, match=r"HalloVideoStitch input 'frames': segments do not join: one ends at frame 4"):
        run("HalloVideoStitch", frames=head, audio=track, fps=25.0, frames_3=tail)
    batch = {"waveform": torch.zeros(2, 1, 16000), "sample_rate": 16000}
    with pytest.raises(InputError, match=r"HalloVideoStitch input 'audio': .* batch of 2 tracks"):
        run("HalloVideoStitch", frames=head, audio=batch, fps=25.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cfg": float("nan")}, r"HalloSampler input 'cfg': guidance_scale must be a finite number"),
        ({"lip_weight": 1e30}, r"HalloSampler input 'lip_weight': lip_weight 1e\+30 is out of range: use 0 to 5"),
        ({"steps": 1001}, r"HalloSampler input 'steps': steps 1001 is out of range"),
    ],
)
def test_bad_settings_name_the_node_input(run, pipeline, overrides, message) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=_face(env))
    with pytest.raises(env.module("hallo_pipeline.errors").InputError, match=message):
        _sample(run, pipeline, reference, _audio(env, pipeline), **overrides)
