"""The command line, run in-process as a user would call it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from hallo_pipeline.cli import main
from hallo_pipeline.video import read_video_info
from tests.media import write_wav as _wav

REPO = Path(__file__).resolve().parents[2]


def test_animate_writes_h264_aac_at_25fps_cut_to_the_audio(tiny_model_folder, portrait_path, tmp_path) -> None:
    seconds = 0.7  # 17.5 -> 18 frames: not a multiple of the clip length 4
    audio = _wav(tmp_path / "speech.wav", seconds)
    out = tmp_path / "result.mp4"
    rc = main(["animate", "--image", str(portrait_path), "--audio", str(audio), "--output", str(out),
               "--models", str(tiny_model_folder), "--size", "128", "--steps", "2", "--clip-length", "4",
               "--seed", "5", "--lip-weight", "1.5"])
    assert rc == 0
    info = read_video_info(out)
    assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
    assert info["fps"] == 25
    assert info["frames"] == math.ceil(seconds * 25) == 18
    assert (info["width"], info["height"]) == (256, 256)  # the whole photo, its face animated at --size 128
    # the original audio, cut to the video (18 / 25 s > 0.7 s, so all of it); AAC pads its last frame
    assert seconds <= info["audio_seconds"] <= seconds + 1024 / info["sample_rate"] + 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4", "speech.wav"]


def _first_frame(path: Path):
    import av

    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


PHOTOS = {  # name: (window of the astronaut photo: top, left, height, width; upscaled size or None; --max-side)
    "portrait-3x4": ((0, 64, 512, 384), None, 0),
    "landscape-16x9": ((0, 0, 288, 512), None, 0),
    "3000x2000-capped": ((0, 0, 341, 512), (3000, 2000), 640),
    "3000x2000": ((0, 0, 341, 512), (3000, 2000), 0),
}


@pytest.mark.parametrize("window, upscale, max_side", [  # the uncapped 3000x2000 with the slow tests (8 s)
    pytest.param(*value, id=name, marks=[pytest.mark.slow] if name == "3000x2000" else [])
    for name, value in PHOTOS.items()
])
def test_any_photo_in_the_same_photo_out(tiny_model_folder, tmp_path, window, upscale, max_side) -> None:
    """A real photo of any shape comes back whole, its size kept (or capped), the face animated, with sound."""
    import numpy as np
    from PIL import Image

    from hallo_pipeline.framing import PasteBack
    from hallo_pipeline.hallo.face_analysis import FaceAnalyzer
    from tests.conftest import astronaut

    photo = Image.fromarray(astronaut(*window))
    if upscale:
        photo = photo.resize(upscale, Image.BICUBIC)
    photo.save(tmp_path / "photo.png")
    audio = _wav(tmp_path / "speech.wav", 0.5)
    out = tmp_path / "moving.mp4"
    rc = main(["animate", "--image", str(tmp_path / "photo.png"), "--audio", str(audio), "--output", str(out),
               "--models", str(tiny_model_folder), "--size", "128", "--steps", "1", "--clip-length", "4",
               "--max-side", str(max_side)])
    assert rc == 0
    info = read_video_info(out)
    rgb = np.asarray(photo)
    face = FaceAnalyzer(tiny_model_folder).analyze(rgb, image_size=128)
    width, height = PasteBack(rgb, face.framing, max_side=max_side).size
    assert (info["width"], info["height"]) == (width, height)
    if max_side:
        assert max(width, height) <= max_side and abs(width / height - photo.width / photo.height) < 0.01
    else:
        assert (width, height) == (photo.width // 2 * 2, photo.height // 2 * 2)
    assert info["audio_codec"] == "aac" and info["audio_seconds"] >= 0.5 and info["frames"] == 13
    # Outside the square (and its feather band) the video is the photo, up to h264; inside, the model's frame.
    frame = _first_frame(out).astype(np.float64)
    still = np.asarray(photo.resize((width, height), Image.BICUBIC) if max_side else rgb[:height, :width], np.float64)
    sx, sy = width / photo.width, height / photo.height
    x0, y0, x1, y1 = face.framing.box
    inside = np.zeros((height, width), bool)
    inside[max(0, round(y0 * sy)) : round(y1 * sy), max(0, round(x0 * sx)) : round(x1 * sx)] = True
    assert 0 < inside.mean() < 1
    assert np.abs(frame - still)[~inside].mean() < 3
    assert np.abs(frame - still)[inside].mean() > 10  # the tiny random model paints no astronaut


def test_stretch_writes_the_releases_square_frames(tiny_model_folder, tmp_path) -> None:
    from PIL import Image

    from tests.conftest import astronaut

    Image.fromarray(astronaut(0, 64, 512, 384)).save(tmp_path / "photo.png")
    audio = _wav(tmp_path / "speech.wav", 0.3)
    out = tmp_path / "square.mp4"
    assert main(["animate", "--image", str(tmp_path / "photo.png"), "--audio", str(audio), "--output", str(out),
                 "--models", str(tiny_model_folder), "--size", "128", "--steps", "1", "--clip-length", "4",
                 "--framing", "stretch"]) == 0
    info = read_video_info(out)
    assert (info["width"], info["height"], info["frames"]) == (128, 128, 8)


def test_bad_image_is_an_error_message_not_a_traceback(tiny_model_folder, tmp_path, capsys) -> None:
    from PIL import Image

    Image.new("RGB", (256, 256), (90, 120, 200)).save(tmp_path / "sky.png")
    audio = _wav(tmp_path / "speech.wav", 0.3)
    rc = main(["animate", "--image", str(tmp_path / "sky.png"), "--audio", str(audio), "--output",
               str(tmp_path / "o.mp4"), "--models", str(tiny_model_folder), "--size", "128"])
    assert rc == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_attention_compile_and_fp8_reach_the_pipeline(tiny_model_folder, portrait_path, tmp_path, monkeypatch) -> None:
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.hallo.pipeline import HalloPipeline

    seen = {}

    def load(*args, **kwargs):
        seen.update(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(HalloPipeline, "load", load)
    audio = _wav(tmp_path / "speech.wav", 0.3)
    common = ["animate", "--image", str(portrait_path), "--audio", str(audio), "--output", str(tmp_path / "o.mp4"),
              "--models", str(tiny_model_folder)]
    assert main(common) == 2 and (seen["attention"], seen["compile"], seen["fp8"]) == ("auto", False, False)
    assert main([*common, "--attention", "sage", "--compile", "--fp8"]) == 2
    assert (seen["attention"], seen["compile"], seen["fp8"]) == ("sage", True, True)


def test_hallo_keeps_its_own_defaults_and_ignores_a_prompt(tiny_model_folder, portrait_path, tmp_path, monkeypatch,
                                                            capsys) -> None:
    """--steps and --cfg left out: the family of the weights fills them in (Hallo: 40 and 3.5); a --prompt is
    noted as ignored and never reaches Hallo's pipeline."""
    from hallo_pipeline.hallo.pipeline import HalloPipeline

    seen = {}

    class Recorder:
        def animate(self, image, audio, output, settings, **options):
            seen.update(settings=settings, **options)
            return output

    monkeypatch.setattr(HalloPipeline, "load", lambda *args, **kwargs: Recorder())
    audio = _wav(tmp_path / "speech.wav", 0.3)
    common = ["animate", "--image", str(portrait_path), "--audio", str(audio), "--output", str(tmp_path / "o.mp4"),
              "--models", str(tiny_model_folder)]
    assert main([*common, "--prompt", "A man talking"]) == 0
    assert (seen["settings"].steps, seen["settings"].guidance_scale) == (40, 3.5) and "prompt" not in seen
    assert "Hallo weights take no text prompt; --prompt is ignored" in capsys.readouterr().err
    assert main([*common, "--steps", "7", "--cfg", "2"]) == 0
    assert (seen["settings"].steps, seen["settings"].guidance_scale) == (7, 2.0)


def test_attention_flash_on_the_cpu_says_what_to_use(tiny_model_folder, portrait_path, tmp_path, capsys) -> None:
    audio = _wav(tmp_path / "speech.wav", 0.3)
    rc = main(["animate", "--image", str(portrait_path), "--audio", str(audio), "--output", str(tmp_path / "o.mp4"),
               "--models", str(tiny_model_folder), "--device", "cpu", "--attention", "flash"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error: attention 'flash' runs only on a CUDA GPU, but the device is cpu; use attention 'sdpa'" in err
    assert not (tmp_path / "o.mp4").exists()


def test_make_tiny_models_and_help(tmp_path) -> None:
    from tests.conftest import mediapipe_face_models_or_skip

    mediapipe_face_models_or_skip()
    assert main(["make-tiny-models", str(tmp_path / "m")]) == 0
    for part in ("hallo/net.pth", "hallo/config.json", "hallo2/net.pth", "sd-vae-ft-mse/config.json",
                 "wav2vec/wav2vec2-base-960h/config.json", "face_analysis/models/scrfd_10g_bnkps.onnx",
                 "face_analysis/models/glintr100.onnx", "face_analysis/models/face_landmarker_v2_with_blendshapes.task",
                 "audio_separator/Kim_Vocal_2.onnx"):
        assert (tmp_path / "m" / part).is_file(), part
    assert main(["make-tiny-models", str(tmp_path / "n"), "--no-face-landmarker"]) == 0
    assert not (tmp_path / "n" / "face_analysis/models/face_landmarker_v2_with_blendshapes.task").exists()
    out = subprocess.run([sys.executable, "-m", "hallo_pipeline", "animate", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for option in ("--steps", "--cfg", "--seed", "--pose-weight", "--face-weight", "--lip-weight", "--size",
                   "--hallo2", "--separate-vocals", "--device", "--dtype", "--attention", "--compile"):
        assert option in out


def test_download_failure_says_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    import huggingface_hub.constants

    import hallo_pipeline.download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network here either way
    monkeypatch.setattr(hallo_pipeline.download, "check_free_space", lambda root, files: None)  # a small CI disk
    rc = main(["download", str(tmp_path / "models")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "fudan-generative-ai/hallo" in err and "then try again" in err


def test_a_bad_output_stops_the_command_before_the_models_load(tiny_model_folder, portrait_path, tmp_path, monkeypatch,
                                                              capsys) -> None:
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.hallo.pipeline import HalloPipeline

    loads = []

    def load(*args, **kwargs):
        loads.append(args)
        raise InputError("stop here")

    monkeypatch.setattr(HalloPipeline, "load", load)
    audio = _wav(tmp_path / "speech.wav", 0.3)
    before = audio.read_bytes()
    common = ["animate", "--image", str(portrait_path), "--audio", str(audio), "--models", str(tiny_model_folder),
              "--output"]
    assert main([*common, str(audio)]) == 2
    err = capsys.readouterr().err
    assert (f"error: output '{audio}' is the audio file '{audio}'; "
            "writing the video there would destroy the audio") in err
    (tmp_path / "folder").mkdir()
    assert main([*common, str(tmp_path / "folder")]) == 2
    assert "is a folder; give a file name inside it" in capsys.readouterr().err
    assert loads == [] and audio.read_bytes() == before

    (tmp_path / "old.mp4").write_bytes(b"old")
    assert main([*common, str(tmp_path / "old.mp4")]) == 2  # it gets as far as loading
    assert f"note: {tmp_path / 'old.mp4'} exists; it will be replaced once the new video is complete" in (
        capsys.readouterr().err)
    assert len(loads) == 1 and (tmp_path / "old.mp4").read_bytes() == b"old"


SIGTERM_SCRIPT = """
import sys, time
import torch
from hallo_pipeline import cli
from hallo_pipeline.video import VideoWriter

def animate(args):  # a run that is writing its video when the signal comes
    with VideoWriter(args.output) as writer:
        writer.write(torch.rand(60, 3, 32, 32))  # more than x264 holds back, so the file exists
        print("writing", flush=True)
        time.sleep(120)
    return 0

cli.COMMANDS["animate"] = animate
sys.exit(cli.main(["animate", "--image", "x.png", "--audio", "x.wav", "--output", sys.argv[1]]))
"""


def test_sigterm_cleans_up_like_ctrl_c(tmp_path) -> None:
    import select
    import signal

    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path / "out" / "video.mp4")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready and proc.stdout.readline().strip() == "writing", proc.stderr.read()
        assert next((tmp_path / "out").iterdir()).name.endswith(".partial")  # really mid-write
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert rc == 143
    assert proc.stderr.read().strip() == "terminated; no output was left behind"
    assert list((tmp_path / "out").iterdir()) == []
