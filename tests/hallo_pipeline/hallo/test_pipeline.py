"""HalloPipeline on a tiny model folder: stages, segments, cancel, Hallo2 mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import Cancelled, CheckpointError, InputError
from hallo_pipeline.hallo.pipeline import HalloPipeline, stitch

SIZE, CLIP = 128, 4


def _speech(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllable-like loudness changes
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t)).astype(np.float32)[None]


@pytest.fixture(scope="module")
def pipeline(tiny_model_folder):
    return HalloPipeline.load(tiny_model_folder, device="cpu")


@pytest.fixture(scope="module")
def reference(pipeline, portrait_path):
    return pipeline.prepare_reference(pipeline.analyze_face(portrait_path, image_size=SIZE))


@pytest.fixture(scope="module")
def audio(pipeline):
    return pipeline.encode_audio(_speech(0.9), 16000, clip_length=CLIP)  # 23 frames -> 24 padded


def test_load_finds_hallo_and_its_files(pipeline, tiny_model_folder) -> None:
    assert pipeline.variant == "hallo"
    assert pipeline.files.net == tiny_model_folder / "hallo" / "net.pth"
    assert pipeline.dtype == torch.float32 and pipeline.device.type == "cpu"
    assert not pipeline.settings().motion_drop_rate


def test_stages_fit_together(pipeline, reference, audio) -> None:
    assert reference.reference_image.shape == (3, SIZE, SIZE)
    assert audio.frames == 23 and audio.features.shape[0] == 24
    segment = pipeline.sample(reference, audio, pipeline.settings(steps=2, clip_length=CLIP))
    assert segment.frames.shape == (23, 3, SIZE, SIZE)
    assert (segment.start_frame, segment.total_frames, segment.fps) == (0, 23, 25)
    assert 0.0 <= segment.frames.min() and segment.frames.max() <= 1.0
    assert reference.image_rows is not None  # the portrait's ReferenceNet rows are kept for re-runs


def test_segments_equal_the_uninterrupted_run(pipeline, reference, audio) -> None:
    settings = pipeline.settings(steps=2, clip_length=CLIP, seed=3)
    whole = pipeline.sample(reference, audio, settings)
    first = pipeline.sample(reference, audio, settings, start_frame=0, end_frame=8)
    second = pipeline.sample(reference, audio, settings, end_frame=16, previous=first)
    third = pipeline.sample(reference, audio, settings, previous=second)
    assert [s.frames.shape[0] for s in (first, second, third)] == [8, 8, 7]
    torch.testing.assert_close(stitch([third, first, second]), whole.frames, rtol=0, atol=1e-6)
    after_the_end = pipeline.sample(reference, audio, settings, previous=third)
    assert (after_the_end.frames.shape[0], after_the_end.start_frame) == (0, 23)
    with pytest.raises(InputError, match="not a multiple of the clip length") as error:
        pipeline.sample(reference, audio, settings, start_frame=6)
    assert error.value.input == "start_frame"
    with pytest.raises(InputError, match="does not match the previous segment"):
        pipeline.sample(reference, audio, settings, start_frame=4, previous=first)
    # a later start without a previous segment begins from the portrait (no motion context needed)
    preview = pipeline.sample(reference, audio, settings, start_frame=16)
    assert (preview.start_frame, preview.frames.shape[0]) == (16, 7)
    with pytest.raises(InputError, match="segments do not join"):
        stitch([first, third])


def test_zero_sizes_are_refused_not_read_as_the_default(pipeline, portrait_path, audio) -> None:
    with pytest.raises(InputError, match="image_size 0 cannot be used"):
        pipeline.analyze_face(portrait_path, image_size=0)
    with pytest.raises(InputError, match="clip_length 0 is out of range"):
        pipeline.encode_audio(_speech(0.3), 16000, clip_length=0)
    with pytest.raises(InputError, match="clip_length 31 is too long for these weights"):
        pipeline.settings(clip_length=31)
    with pytest.raises(InputError, match=r"steps must be a whole number"):
        pipeline.settings(steps=2.5)


def test_cancel_leaves_no_file(pipeline, portrait_path, tmp_path) -> None:
    # The encoder holds back its first frames (about 40 with x264's lookahead), so the partial file
    # appears only some clips in: cancel as soon as it is on disk, well before the end of the audio.
    calls = []
    out = tmp_path / "out.mp4"
    with pytest.raises(Cancelled):
        pipeline.animate(
            portrait_path, (_speech(10.0), 16000), out, pipeline.settings(steps=1, clip_length=CLIP),
            image_size=64, progress=calls.append, should_cancel=lambda: any(tmp_path.iterdir()),
        )
    assert 0 < calls[-1].done < calls[-1].total  # stopped mid-run, with the partial file written
    assert list(tmp_path.iterdir()) == []


def test_hallo2_mode(tiny_model_folder, portrait_path) -> None:
    pipe = HalloPipeline.load(tiny_model_folder, variant="hallo2", device="cpu")
    assert pipe.variant == "hallo2" and pipe.files.net.parent.name == "hallo2"
    settings = pipe.settings(steps=1, clip_length=CLIP)
    assert settings.motion_drop_rate == 0.25
    assert pipe.audio_chunk_seconds() == 60.0 and pipe.audio_chunk_seconds("hallo") is None
    reference = pipe.prepare_reference(pipe.analyze_face(portrait_path, image_size=SIZE))
    audio = pipe.encode_audio(_speech(0.3), 16000, clip_length=CLIP)
    assert pipe.sample(reference, audio, settings).frames.shape == (8, 3, SIZE, SIZE)


def test_missing_parts_name_the_fix(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"no Hallo weights found.*python -m hallo_pipeline download"):
        HalloPipeline.load(tmp_path, device="cpu")
    (tmp_path / "hallo").mkdir()
    (tmp_path / "hallo" / "net.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"missing: .*sd-vae-ft-mse.*python -m hallo_pipeline download"):
        HalloPipeline.load(tmp_path, device="cpu")


def test_load_sets_the_attention_kernel_and_compiles_on_request(tiny_model_folder) -> None:
    from hallo_pipeline.hallo.models.attention import Attention, sdpa

    assert all(m.kernel is sdpa for m in HalloPipeline.load(tiny_model_folder, device="cpu").net.modules()
               if isinstance(m, Attention))

    def kernel(q, k, v):
        return sdpa(q, k, v)

    net = HalloPipeline.load(tiny_model_folder, device="cpu", attention=kernel, compile=True).net
    attentions = [m for m in net.modules() if isinstance(m, Attention)]
    assert attentions and all(m.kernel is kernel for m in attentions)
    assert net.denoising_unet._compiled_call_impl is not None and net.reference_unet._compiled_call_impl is None


def test_an_attention_kernel_that_cannot_run_here_stops_the_load(tiny_model_folder) -> None:
    with pytest.raises(InputError, match=r"attention 'sage' runs only on a CUDA GPU, but the device is cpu"):
        HalloPipeline.load(tiny_model_folder, device="cpu", attention="sage")


def test_a_bad_output_fails_before_the_face_is_analysed(pipeline, portrait_path, tmp_path, monkeypatch) -> None:
    def analyze_face(*args, **kwargs):
        raise AssertionError("the output should have been checked before any model ran")

    monkeypatch.setattr(pipeline, "analyze_face", analyze_face)
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF the only copy")
    (tmp_path / "videos").mkdir()
    settings = pipeline.settings(steps=1, clip_length=CLIP)
    with pytest.raises(InputError, match=r"output '.*speech\.wav' is the audio file"):
        pipeline.animate(portrait_path, str(audio), audio, settings, image_size=SIZE)
    with pytest.raises(InputError, match=r"output '.*portrait\.png' is the image file"):
        pipeline.animate(portrait_path, (_speech(0.3), 16000), portrait_path.parent / "x" / ".." / portrait_path.name,
                         settings)
    with pytest.raises(InputError, match=r"output '.*videos' is a folder"):
        pipeline.animate(portrait_path, str(audio), tmp_path / "videos", settings)
    with pytest.raises(InputError, match=r"output '.*result\.gif' ends in '\.gif'.*use '.*result\.mp4'"):
        pipeline.animate(portrait_path, str(audio), tmp_path / "result.gif", settings)
    assert audio.read_bytes() == b"RIFF the only copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav", "videos"]


def test_bf16_end_to_end_on_the_cpu(tiny_model_folder, portrait_path, tmp_path) -> None:
    """The GPU paths run in fp16/bf16; this runs every stage in reduced precision (bf16: the CPU has its kernels)."""
    from hallo_pipeline.video import read_video_info

    pipe = HalloPipeline.load(tiny_model_folder, device="cpu", dtype="bf16")
    assert pipe.dtype == torch.bfloat16 and pipe.net.denoising_unet.conv_in.weight.dtype == torch.bfloat16
    face = pipe.analyze_face(portrait_path, image_size=SIZE)
    reference = pipe.prepare_reference(face)
    audio = pipe.encode_audio(_speech(0.3), 16000, clip_length=CLIP)
    segment = pipe.sample(reference, audio, pipe.settings(steps=2, clip_length=CLIP))
    assert segment.frames.dtype == torch.float32 and torch.isfinite(segment.frames).all()
    assert segment.frames.shape == (8, 3, SIZE, SIZE) and segment.frames.std() > 0.01
    out = pipe.animate(portrait_path, (_speech(0.3), 16000), tmp_path / "bf16.mp4",
                       pipe.settings(steps=1, clip_length=CLIP), image_size=SIZE)
    assert read_video_info(out)["frames"] == 8


def test_step_memory_covers_a_full_size_denoiser_step() -> None:
    """The activation reserve the nodes ask of ComfyUI against the step's peak counted on `meta`
    (benchmarks/memory_estimate.py): enough, with a margin, and not wildly more."""
    from types import SimpleNamespace

    from benchmarks.memory_estimate import build_meta_models, denoiser_step_peak

    net, _, _ = build_meta_models(dtype=torch.float16)
    peak = denoiser_step_peak(net, size=512, frames=16)
    reserve = HalloPipeline.step_memory(SimpleNamespace(dtype=torch.float16), SimpleNamespace(image_size=512),
                                        SimpleNamespace(clip_length=16))
    assert peak < reserve < 1.6 * peak


def test_sample_refuses_a_prompt() -> None:
    with pytest.raises(InputError, match="not by a text prompt") as caught:
        HalloPipeline.sample(None, None, None, None, prompt="a man talking")
    assert caught.value.input == "prompt"
