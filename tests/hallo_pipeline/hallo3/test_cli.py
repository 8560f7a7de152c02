"""`python -m hallo_pipeline animate --variant hallo3`, run in-process on a tiny Hallo3 folder as a user would."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from hallo_pipeline.cli import main
from hallo_pipeline.video import read_video_info
from tests.conftest import ASTRONAUT, astronaut, mediapipe_face_models_or_skip
from tests.media import write_wav


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    for module in ("onnx", "sentencepiece", "insightface"):
        pytest.importorskip(module)
    mediapipe_face_models_or_skip()
    from hallo_pipeline.hallo3.tiny_models import make_tiny_models_hallo3

    return make_tiny_models_hallo3(tmp_path_factory.mktemp("h3cli") / "hallo3-tiny", seed=1)


@pytest.fixture(scope="module")
def working_size(folder):
    """(H, W) the tiny weights work at, from the folder's own config (never a constant here)."""
    from hallo_pipeline import families
    from hallo_pipeline.hallo3.loading import read_model_config

    config, _ = read_model_config(families.locate(folder, "hallo3").weights)
    return tuple(config.segment.image_size)


def _animate(folder, image, audio, output, *options: str) -> int:
    return main(["animate", "--variant", "hallo3", "--models", str(folder), "--image", str(image),
                 "--audio", str(audio), "--output", str(output), *options])


def _check_video(path, seconds: float, size: tuple[int, int]) -> dict:
    info = read_video_info(path)
    assert (info["video_codec"], info["audio_codec"], info["fps"]) == ("h264", "aac", 25)
    assert info["frames"] == math.ceil(seconds * 25)
    assert (info["width"], info["height"]) == size
    # The original audio, cut to the video (ceil(seconds * 25) / 25 >= seconds: all of it); AAC pads its last frame.
    assert seconds <= info["audio_seconds"] <= seconds + 1024 / info["sample_rate"] + 1e-6
    return info


def _first_frame(path):
    import av

    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


PHOTOS = {  # name: (window of the astronaut photo: top, left, height, width; upscaled size or None; --max-side)
    "portrait-3x4": ((0, 64, 512, 384), None, 0),
    "landscape-16x9": ((0, 0, 288, 512), None, 0),
    "square": ((0, 0, 512, 512), None, 0),
    "3000x2000-capped": ((0, 0, 341, 512), (3000, 2000), 640),
}


# Three of the four shapes run with the slow tests, to keep the default run within its time budget.
SLOW_PHOTOS = {"landscape-16x9", "square", "3000x2000-capped"}


@pytest.mark.parametrize("window, upscale, max_side", [
    pytest.param(*value, id=name, marks=[pytest.mark.slow] if name in SLOW_PHOTOS else [])
    for name, value in PHOTOS.items()
])
def test_any_photo_in_the_same_photo_out(folder, working_size, tmp_path, window, upscale, max_side) -> None:
    """framing crop (the default): a real photo of any shape comes back whole, its size kept (or capped), the
    rectangle of the working aspect around the face animated and pasted back, with sound."""
    import numpy as np
    from PIL import Image

    from hallo_pipeline import families
    from hallo_pipeline.face.finder import FaceFinder
    from hallo_pipeline.hallo3.face import analyze_face
    from hallo_pipeline.hallo3.loading import read_model_config

    photo = Image.fromarray(astronaut(*window))
    if upscale:
        photo = photo.resize(upscale, Image.BICUBIC)
    photo.save(tmp_path / "photo.png")
    seconds = 0.5
    audio = write_wav(tmp_path / "speech.wav", seconds)
    out = tmp_path / "moving.mp4"
    assert _animate(folder, tmp_path / "photo.png", audio, out, "--steps", "1", "--max-side", str(max_side)) == 0
    rgb = np.asarray(photo)
    config, _ = read_model_config(families.locate(folder, "hallo3").weights)
    face = analyze_face(FaceFinder(folder), rgb, config)
    framing = face.framing
    assert (framing.crop_width * working_size[0], framing.crop_height * working_size[1]) == (
        framing.crop_height * working_size[1], framing.crop_width * working_size[0])  # the working aspect
    width, height = face.paste_back(max_side=max_side).size
    _check_video(out, seconds, (width, height))
    if max_side:
        assert max(width, height) <= max_side and abs(width / height - photo.width / photo.height) < 0.01
    else:
        assert (width, height) == (photo.width // 2 * 2, photo.height // 2 * 2)
    # Outside the rectangle the video is the photo, up to h264; inside, the model's frame.
    frame = _first_frame(out).astype(np.float64)
    still = np.asarray(photo.resize((width, height), Image.BICUBIC) if max_side else rgb[:height, :width], np.float64)
    sx, sy = width / photo.width, height / photo.height
    x0, y0, x1, y1 = framing.box
    inside = np.zeros((height, width), bool)
    inside[max(0, round(y0 * sy)) : round(y1 * sy), max(0, round(x0 * sx)) : round(x1 * sx)] = True
    assert 0 < inside.mean() < 1
    assert np.abs(frame - still)[~inside].mean() < 3
    assert np.abs(frame - still)[inside].mean() > 10  # the tiny random model paints no astronaut


def test_a_square_photo_gives_square_frames_with_the_audio_and_progress(folder, working_size, tmp_path,
                                                                        capsys) -> None:
    """framing stretch: the release pads a square photo to the working size and crops the frames back (SPEC §9.3)."""
    seconds = 0.7  # 17.5 -> 18 frames, fewer than one segment
    audio = write_wav(tmp_path / "speech.wav", seconds)
    out = tmp_path / "talking.mp4"
    assert _animate(folder, ASTRONAUT, audio, out, "--steps", "2", "--seed", "7", "--framing", "stretch") == 0
    height, _ = working_size
    _check_video(out, seconds, (height, height))
    err = capsys.readouterr().err
    assert "segment 1/1  step 1/2  [1/2]" in err and "step 2/2  [2/2]" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav", "talking.mp4"]  # no partial file left


@pytest.mark.slow  # about 15 s: two segments through the command line
def test_a_wide_photo_fills_the_working_size_over_two_segments(folder, working_size, tmp_path, capsys) -> None:
    """framing stretch: a 3:2 window of the photo is scaled to cover the working size; audio past one segment
    takes two."""
    from PIL import Image

    photo = tmp_path / "wide.png"
    Image.fromarray(astronaut(0, 0, 340, 510)).save(photo)
    seconds = 2.0  # 50 frames: more than one segment's new frames in the tiny and the released config
    audio = write_wav(tmp_path / "speech.wav", seconds, channels=1)
    out = tmp_path / "wide.mp4"
    assert _animate(folder, photo, audio, out, "--steps", "1", "--prompt", "An astronaut", "--cfg", "2",
                    "--framing", "stretch") == 0
    height, width = working_size
    _check_video(out, seconds, (width, height))
    assert "segment 2/2  step 1/1  [2/2]" in capsys.readouterr().err


def test_the_family_fills_in_its_defaults(folder, tmp_path, monkeypatch) -> None:
    """No --steps, --cfg or --prompt: Hallo3's own 50 steps, cfg 3.5 and a talking-head prompt reach the run."""
    from hallo_pipeline.hallo3 import animate
    from hallo_pipeline.hallo3.family import DEFAULT_PROMPT

    seen = {}

    class Recorder:
        def animate(self, image, audio, output, settings, **options):
            seen.update(settings=settings, **options)
            return output

    monkeypatch.setattr(animate.Hallo3Pipeline, "load", classmethod(lambda cls, files, **kw: Recorder()))
    audio = write_wav(tmp_path / "speech.wav", 0.2)
    assert _animate(folder, ASTRONAUT, audio, tmp_path / "out.mp4") == 0
    assert (seen["settings"].steps, seen["settings"].guidance_scale, seen["settings"].seed) == (50, 3.5, 42)
    assert seen["prompt"] == DEFAULT_PROMPT
    assert (seen["framing"], seen["crop_scale"], seen["max_side"], seen["feather"], seen["color_match"]) == (
        "crop", 2.3, 0, 0.05, True)


@pytest.mark.parametrize("options, fp8, blocks, tiled", [
    ([], False, 0, False),
    (["--fp8"], True, 0, False),
    (["--offload-blocks", "1"], False, 1, False),
    (["--fp8", "--offload-blocks", "1", "--tiled-decode"], True, 1, True),
    (["--low-vram"], True, "half", True),
    (["--low-vram", "--offload-blocks", "0"], True, 0, True),
], ids=["default", "fp8", "offload", "all-three", "low-vram", "low-vram-no-offload"])
def test_memory_options_reach_the_loader(folder, tmp_path, monkeypatch, options, fp8, blocks, tiled) -> None:
    from hallo_pipeline import families
    from hallo_pipeline.hallo3 import animate
    from hallo_pipeline.hallo3.loading import read_model_config

    seen = {}

    class Stop(Exception):
        pass

    def load(cls, files, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(animate.Hallo3Pipeline, "load", classmethod(load))
    audio = write_wav(tmp_path / "speech.wav", 0.2)
    with pytest.raises(Stop):
        _animate(folder, ASTRONAUT, audio, tmp_path / "out.mp4", *options)
    layers = read_model_config(families.locate(folder, "hallo3").weights)[0].dit.num_layers
    expected = (fp8, layers // 2 if blocks == "half" else blocks, tiled)
    assert (seen["fp8"], seen["offload_blocks"], seen["tiled_decode"]) == expected


@pytest.mark.slow  # about 12 s; the low-VRAM options' wiring is tested above without a run
def test_a_low_vram_run_makes_the_video(folder, working_size, tmp_path) -> None:
    """fp8 storage and streamed layers run end to end (on the CPU: the same code paths a GPU takes)."""
    audio = write_wav(tmp_path / "speech.wav", 0.3)
    out = tmp_path / "low.mp4"
    assert _animate(folder, ASTRONAUT, audio, out, "--steps", "1", "--low-vram", "--fp8", "--framing", "stretch") == 0
    height, _ = working_size
    _check_video(out, 0.3, (height, height))


BAD = {  # options -> what the message must say (the option as the library names it, and why)
    "clip-length": (["--clip-length", "8"], ["clip_length=8", "segments are 49 frames"]),
    "region-weight": (["--lip-weight", "1.5"], ["lip_weight=1.5", "no per-region audio strengths"]),
    "stretch-feather": (["--framing", "stretch", "--feather", "0.1"],
                        ["feather=0.1 with framing='stretch'", "the model's own frames", "use framing='crop'"]),
    "stretch-max-side": (["--framing", "stretch", "--max-side", "640", "--no-color-match"],
                         ["max_side=640, color_match=False with framing='stretch'"]),
    "max-side-too-small": (["--max-side", "8"], ["max_side 8 is too small"]),
    "size": (["--size", "256"], ["image_size=256", "own size"]),
    "empty-prompt": (["--prompt", "  "], ["prompt must be a text"]),
    "offload-blocks": (["--offload-blocks", "-1"], ["offload_blocks -1 is out of range", "0 (none) to"]),
    "too-many-blocks": (["--low-vram", "--offload-blocks", "999"], ["offload_blocks 999 is out of range"]),
    "attention": (["--attention", "sage"], ["attention='sage'", "scaled_dot_product_attention"]),
}


@pytest.mark.parametrize("options, said", BAD.values(), ids=BAD.keys())
def test_options_hallo3_cannot_honour_stop_before_the_weights_load(folder, tmp_path, monkeypatch, capsys, options,
                                                                   said) -> None:
    from hallo_pipeline.hallo3 import animate

    def no_loading(cls, files, **kw):
        raise AssertionError("the weights were loaded before the options were checked")

    monkeypatch.setattr(animate.Hallo3Pipeline, "load", classmethod(no_loading))
    audio = write_wav(tmp_path / "speech.wav", 0.2)
    assert _animate(folder, ASTRONAUT, audio, tmp_path / "out.mp4", *options) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert all(part in err for part in said), err
    assert not (tmp_path / "out.mp4").exists()


def test_each_refusal_names_the_input_a_front_end_shows() -> None:
    from hallo_pipeline.config import RegionWeights
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.hallo3.family import check_framing_options, refuse_hallo_options

    refuse_hallo_options(image_size=512, clip_length=16, weights=RegionWeights())  # defaults: fine
    check_framing_options("stretch", 3.0, {"feather": 0.05, "color_match": True, "max_side": 0})
    check_framing_options("crop", 1.5, {"feather": 0.2, "color_match": False, "max_side": 640})
    for options, name, said in (
        ({"weights": RegionWeights(face=0.5, lip=2)}, "face_weight", "face_weight=0.5, lip_weight=2:"),
        ({"clip_length": 8, "image_size": 256}, "clip_length", "clip_length=8: Hallo3's segments"),
        ({"clip_lenght": 8}, "clip_lenght", "unknown options ['clip_lenght']"),
        ({"framing": "crop"}, "framing", "unknown options ['framing']"),  # no longer Hallo's alone
    ):
        with pytest.raises(InputError) as err:
            refuse_hallo_options(**options)
        assert err.value.input == name and said in str(err.value)
    for args, name, said in (
        (("stretch", 2.3, {"max_side": 640}), "max_side", "max_side=640 with framing='stretch'"),
        (("stretch", 2.3, {"color_match": False}), "color_match", "color_match=False with framing='stretch'"),
        (("fit", 2.3, None), "framing", "framing='fit' is unknown"),
        (("crop", 9.0, None), "crop_scale", "crop_scale"),
        (("crop", 2.3, {"feather": 0.9}), "feather", "feather"),
        (("crop", 2.3, {"max_sides": 9}), "max_sides", "unknown paste options"),
    ):
        with pytest.raises(InputError) as err:
            check_framing_options(*args)
        assert err.value.input == name and said in str(err.value)


def test_auto_precision_is_the_releases_bf16_on_a_gpu(folder, monkeypatch) -> None:
    import torch

    from hallo_pipeline import devices, families
    from hallo_pipeline.hallo3 import animate

    seen = []

    def from_model_folder(cls, root, device, dtype, **kw):
        seen.append((device.type, dtype))
        return SimpleNamespace(placement=kw.get("placement"))

    monkeypatch.setattr(animate.Hallo3Generator, "from_model_folder", classmethod(from_model_folder))
    files = families.locate(folder, "hallo3")
    families.load_pipeline(files, device="cpu", dtype="auto")
    monkeypatch.setattr(devices, "resolve_device", lambda device: torch.device("cuda"))  # no GPU needed to decide
    families.load_pipeline(files, dtype="auto")
    families.load_pipeline(files, dtype="fp16")
    assert seen == [("cpu", torch.float32), ("cuda", torch.bfloat16), ("cuda", torch.float16)]


def test_the_face_the_nodes_hold_pastes_back_or_says_why_not(folder, working_size) -> None:
    """`Hallo3Pipeline.analyze_face` (the face node's call) gives a `Hallo3Face` that pastes frames of the working
    size back into the photo; a stretch face says that there is nothing to paste into."""
    import numpy as np

    from hallo_pipeline import families
    from hallo_pipeline.errors import InputError

    pipeline = families.load_pipeline(families.locate(folder, "hallo3"), device="cpu")
    photo = astronaut(0, 64, 512, 384)
    face = pipeline.analyze_face(photo, framing="crop", crop_scale=2.0, face_expand_ratio=1.3,
                                 multiple_faces="largest", allow_missing_identity=True)
    assert face.working_size == working_size and face.framing.crop_scale == 2.0
    frame = np.zeros((*working_size, 3), np.uint8)
    assert face.paste_back(max_side=200, feather=0.1, color_match=False).paste(frame).shape == (200, 150, 3)
    stretched = pipeline.analyze_face(photo, framing="stretch")
    assert stretched.framing is None and stretched.portrait.image.shape[-2:] == working_size
    with pytest.raises(InputError, match="framing='stretch'"):
        stretched.paste_back()
