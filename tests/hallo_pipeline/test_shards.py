"""Segment files and `join` from the command line give the library's render + join, frame for frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hallo_pipeline.cli import main
from hallo_pipeline.errors import InputError
from hallo_pipeline.frames import FrameSegment
from hallo_pipeline.framing import Framing
from hallo_pipeline.independent import frame_loudness, join, plan_segments
from hallo_pipeline.shards import check_shards, paste_recipe, read_shard, shard_frames, shard_writer
from hallo_pipeline.video import VideoWriter, frames_to_uint8
from tests.media import write_samples

SIZE, CLIP, SEED = 128, 4, 5


def _speech_wav(path: Path, sr: int = 16000) -> Path:
    """1.5 s of syllable-like tone with a pause over 0.66-0.95 s, as a 16-bit wav."""
    t = np.arange(int(1.5 * sr)) / sr
    voice = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 180 * t)
    voice[int(0.66 * sr) : int(0.95 * sr)] = 0.0
    return write_samples(path, voice, sr)


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _library_render_and_join(models: Path, portrait: Path, wav: Path, out: Path):
    """What the shards hold and the joined video, rendered by library calls with the command line's defaults."""
    from hallo_pipeline.audio.io import load_audio
    from hallo_pipeline.hallo.independent import render_segment
    from hallo_pipeline.hallo.pipeline import HalloPipeline

    pipeline = HalloPipeline.load(models, device="cpu")
    waveform, rate = load_audio(wav)
    plan = plan_segments(frame_loudness(waveform, rate), 2, clip_length=CLIP, seed=SEED)
    settings = pipeline.settings(steps=1, clip_length=CLIP, seed=SEED)
    face = pipeline.analyze_face(portrait, image_size=SIZE)
    reference = pipeline.prepare_reference(face)
    features = pipeline.encode_audio(waveform, rate, clip_length=CLIP)
    parts, shards = [], []
    for index in (0, 1):
        segment = render_segment(pipeline, reference, features, settings, plan, index)
        pixels = frames_to_uint8(segment.frames)  # the crop, as the model made it
        shards.append(pixels)
        frames = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
        parts.append(FrameSegment(frames, segment.start_frame, segment.total_frames, 25, None))
    paste = face.paste_back()  # one for the joined video: its first frame fixes the colour correction
    with VideoWriter(out, audio=waveform, sample_rate=rate) as writer:
        writer.write(np.stack([paste.paste(p) for p in frames_to_uint8(join(plan, parts))]))
    return plan, shards


@pytest.mark.slow
def test_shards_and_join_give_the_librarys_video(tiny_model_folder, portrait_path, tmp_path, capsys) -> None:
    wav = _speech_wav(tmp_path / "speech.wav")
    common = ["--image", str(portrait_path), "--audio", str(wav), "--models", str(tiny_model_folder), "--size",
              str(SIZE), "--steps", "1", "--clip-length", str(CLIP), "--seed", str(SEED), "--segments", "2"]
    for index in (1, 0):  # any order, as on separate machines
        part = tmp_path / f"part_{index}.mp4"
        assert main(["animate", *common, "--segment-index", str(index), "--output", str(part)]) == 0
    out = tmp_path / "out.mp4"
    parts = [str(tmp_path / "part_1.mp4"), str(tmp_path / "part_0.mp4")]
    assert main(["join", *parts, "--audio", str(wav), "--output", str(out)]) == 2
    assert "crops of a photo (framing 'crop'); give that photo (--image)" in capsys.readouterr().err
    other = tmp_path / "other.png"
    Image.open(portrait_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    assert main(["join", *parts, "--audio", str(wav), "--image", str(other), "--output", str(out)]) == 2
    assert "not the photo the segments were rendered from" in capsys.readouterr().err
    assert not out.exists()
    assert main(["join", *parts, "--audio", str(wav), "--image", str(portrait_path), "--output", str(out)]) == 0

    plan, shards = _library_render_and_join(tiny_model_folder, portrait_path, wav, tmp_path / "library.mp4")
    for index, pixels in enumerate(shards):
        shard = read_shard(tmp_path / f"part_{index}.mp4")
        assert (shard.index, shard.plan) == (index, plan)  # the command line planned what the library plans
        assert shard.paste["framing"]["crop_width"] == shard.paste["framing"]["crop_height"]  # a square crop
        np.testing.assert_array_equal(_decode(shard.path), pixels)  # lossless: exactly the rendered frames
    joined = _decode(out)
    assert joined.shape[0] == plan.total_frames == 38
    np.testing.assert_array_equal(joined, _decode(tmp_path / "library.mp4"))


def test_check_shards_names_missing_foreign_and_doubled_parts(tmp_path) -> None:
    plan = plan_segments(np.ones(40), 2, clip_length=8)
    other = plan_segments(np.ones(40), 2, clip_length=8, seed=1)

    def write(name: str, p, index: int) -> Path:
        seg = p.segment(index)
        with shard_writer(tmp_path / name, p, index) as writer:
            writer.write(np.full((seg.render_end - seg.start, 8, 8, 3), 10 * index, np.uint8))
        return tmp_path / name

    a, b = write("a.mp4", plan, 0), write("b.mkv", plan, 1)
    cropped = tmp_path / "cropped.mp4"
    recipe = paste_recipe(np.zeros((8, 8, 3), np.uint8), Framing.square(0, 0, 8, 8, 8), feather=0.05)
    with shard_writer(cropped, plan, 1, paste=recipe) as writer:
        writer.write(np.zeros((plan.render_lengths[1], 8, 8, 3), np.uint8))
    assert read_shard(cropped).paste == recipe
    assert check_shards([b, a]) == (plan, {0: a, 1: b})
    assert [x.shape[0] for x in shard_frames(b)] == [16, 8]  # decoded a batch at a time
    for parts, message in (([a], r"segments \[1\] of 2 are missing"), ([a, a, b], "segment 0 is given twice"),
                           ([a, write("c.mp4", other, 1)], "belongs to another plan"), ([], "no segment files"),
                           ([a, cropped], "framed from another photo or framing")):
        with pytest.raises(InputError, match=message) as error:
            check_shards(parts)
        assert error.value.input == "parts"
    with VideoWriter(tmp_path / "plain.mp4") as writer:
        writer.write(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="is not a segment file"):
        read_shard(tmp_path / "plain.mp4")


def test_segment_options_are_checked_before_the_models_load(tiny_model_folder, portrait_path, tmp_path, capsys,
                                                            monkeypatch) -> None:
    from hallo_pipeline.hallo.family import FAMILY

    monkeypatch.setattr(FAMILY, "load", lambda *a, **k: pytest.fail("the models were loaded"))
    wav = _speech_wav(tmp_path / "speech.wav")
    common = ["animate", "--image", str(portrait_path), "--audio", str(wav), "--models", str(tiny_model_folder),
              "--output", str(tmp_path / "p.mp4")]
    assert main([*common, "--segments", "2"]) == 2
    assert "--segments N and --segment-index I go together" in capsys.readouterr().err
    assert main([*common, "--segments", "2", "--segment-index", "2"]) == 2
    assert "use 0 to 1" in capsys.readouterr().err
