"""HalloFaceMask and HalloAudioEmbed with the tiny model folder (real mediapipe, insightface, wav2vec2)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

from tests.conftest import PORTRAIT, astronaut
from tests.nodes.comfy_env import comfy_env

SIZE = 128


@pytest.fixture(scope="module")
def pipeline(run):
    return run("HalloModelLoader", model_folder="hallo", variant="auto", precision="auto", device="auto",
               attention="auto")[0]


@pytest.fixture(scope="module")
def portrait():
    """The committed test portrait as a ComfyUI IMAGE (LoadImage's layout: [1, H, W, 3] float in 0..1)."""
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(PORTRAIT).convert("RGB"), dtype=np.float32) / 255)[None]


def _face_mask(run, pipeline, image, **overrides):
    inputs = dict(pipeline=pipeline, image=image, image_size=SIZE, face_expand_ratio=1.2, multiple_faces="error",
                  allow_missing_identity=False)
    return run("HalloFaceMask", **{**inputs, **overrides})


def test_face_mask_outputs_line_up_with_the_reference_image(run, pipeline, portrait) -> None:
    face, reference, pose, face_mask, lip, region, _ = _face_mask(run, pipeline, portrait)
    assert reference.shape == (1, SIZE, SIZE, 3) and 0 <= reference.min() and reference.max() <= 1
    torch.testing.assert_close(reference[0].permute(2, 0, 1), (face.reference_image + 1) / 2)
    for mask in (pose, face_mask, lip, region):
        assert mask.shape == (1, SIZE, SIZE) and mask.dtype == torch.float32 and 0 <= mask.min() and mask.max() <= 1
    assert face.embedding.abs().sum() > 0  # the identity model found a face
    # the lips lie inside the face box; the pose region is high outside it and low at its centre
    lip_centre = torch.nonzero(lip[0] > 0.5).float().mean(0).long()
    assert region[0][tuple(lip_centre)] == 1 and face_mask[0].max() > 0.5
    box = torch.nonzero(region[0] > 0.5).float().mean(0).long()
    assert pose[0][tuple(box)] < 0.2 and pose[0, 0, 0] > 0.8
    torch.testing.assert_close(region[0], face.face_region[0])


def _image(rgb):
    return torch.from_numpy(rgb.astype(np.float32) / 255)[None]


@pytest.fixture(scope="module")
def photo():
    """A non-square photo (3:4, 384x512) of the astronaut, as LoadImage gives it."""
    return _image(astronaut(left=64, width=384))


def test_crop_framing_animates_a_square_around_the_face_of_any_photo(run, pipeline, photo) -> None:
    face, reference, *masks, crop = _face_mask(run, pipeline, photo, framing="crop", crop_scale=2.3)
    framing = face.framing
    assert (framing.width, framing.height, framing.crop_scale) == (384, 512, 2.3)
    assert face.photo.shape == (512, 384, 3)
    # the crop output is the square at the photo's resolution; the reference is that square at image_size
    assert crop.shape == (1, framing.side, framing.side, 3) and crop.dtype == torch.float32
    assert 0 <= crop.min() and crop.max() <= 1
    shrunk = torch.nn.functional.interpolate(crop.movedim(-1, 1), size=(SIZE, SIZE), mode="bilinear",
                                             antialias=True).movedim(1, -1)
    assert (shrunk - reference).abs().mean() < 0.02
    assert all(m.shape == (1, SIZE, SIZE) for m in masks)
    # a larger crop_scale cuts a larger square around the same face
    wider = _face_mask(run, pipeline, photo, framing="crop", crop_scale=3.0)[0].framing
    assert wider.side > framing.side


def test_the_crop_output_of_a_huge_photo_is_capped(env, run, pipeline, photo, monkeypatch) -> None:
    monkeypatch.setattr(env.module("nodes.face_mask"), "CROP_OUTPUT_MAX_SIDE", 100)
    face, *_, crop = _face_mask(run, pipeline, photo)
    assert face.framing.side > 100 and crop.shape == (1, 100, 100, 3)


def test_stretch_framing_squeezes_the_whole_photo_like_the_release(run, pipeline, photo) -> None:
    face, reference, *_, crop = _face_mask(run, pipeline, photo, framing="stretch")
    assert face.framing is None and face.photo is None
    assert crop is photo  # the whole photo, as given
    squeezed = torch.nn.functional.interpolate(photo.movedim(-1, 1), size=(SIZE, SIZE), mode="bilinear",
                                               antialias=True).movedim(1, -1)
    assert (squeezed - reference).abs().mean() < 0.02


def test_a_prompt_saved_before_framing_existed_still_runs(run, pipeline, photo) -> None:
    """framing and crop_scale are optional: ComfyUI leaves them out of an old prompt, and the node crops."""
    outputs = run("HalloFaceMask", pipeline=pipeline, image=photo, image_size=SIZE, face_expand_ratio=1.2,
                  multiple_faces="error", allow_missing_identity=False)
    assert len(outputs) == 7 and outputs[0].framing.crop_scale == 2.3


@pytest.mark.parametrize(
    ("overrides", "name", "message"),
    [
        ({"framing": "zoom"}, "framing", r"framing='zoom' is unknown; use 'crop'"),
        ({"crop_scale": 0.5}, "crop_scale", r"crop_scale 0.5 is out of range: use 1 to 6"),
    ],
)
def test_framing_settings_name_their_input(env, run, pipeline, photo, overrides, name, message) -> None:
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=rf"HalloFaceMask input '{name}': {message}"):
        _face_mask(run, pipeline, photo, **overrides)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda img: torch.ones_like(img), "InputError", r"HalloFaceMask input 'image': no face was found"),
        (lambda img: img.repeat(2, 1, 1, 1), "InputError", r"HalloFaceMask input 'image': .*batch of 2"),
    ],
)
def test_face_mask_image_errors(env, run, pipeline, portrait, change, error, message) -> None:
    with pytest.raises(getattr(env.module("hallo_pipeline.errors"), error), match=message):
        _face_mask(run, pipeline, change(portrait))


def test_face_mask_image_size_error_names_its_input(env, run, pipeline, portrait) -> None:
    InputError = env.module("hallo_pipeline.errors").InputError
    with pytest.raises(InputError,
                       match=r"HalloFaceMask input 'image_size': image_size 100 cannot be used.* multiple of 64"):
        _face_mask(run, pipeline, portrait, image_size=100)


def test_no_identity_face_stops_unless_allowed(tmp_path, tiny_models, portrait) -> None:
    """With a detector that finds faces only on green squares, the portrait has landmarks but no identity."""
    from hallo_pipeline.testing.tiny_face_models import write_tiny_face_models

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models / "hallo", ignore=shutil.ignore_patterns("hallo2"))
    write_tiny_face_models(models / "hallo" / "face_analysis" / "models")  # replaces the fixed-face detector
    with comfy_env(models) as env:
        nodes = env.nodes()
        pipe = nodes["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto", device="auto",
                                                 attention="auto").args[0]
        run = lambda **kw: nodes["HalloFaceMask"].execute(**kw).args  # noqa: E731
        with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                           match=r"HalloFaceMask input 'image': the face recogniser found no face"
                           r".*allow_missing_identity"):
            _face_mask(lambda _, **kw: run(**kw), pipe, portrait)
        face = _face_mask(lambda _, **kw: run(**kw), pipe, portrait, allow_missing_identity=True)[0]
        assert face.embedding.abs().sum() == 0


def test_face_models_missing_from_the_model_folder_blame_the_pipeline(tmp_path, tiny_models, portrait) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models / "hallo", ignore=shutil.ignore_patterns("face_analysis", "hallo2"))
    with comfy_env(models) as env:
        nodes = env.nodes()
        pipe = nodes["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto", device="auto",
                                                 attention="auto").args[0]
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError,
                           match=r"HalloFaceMask input 'pipeline': .*face_analysis"):
            nodes["HalloFaceMask"].execute(pipeline=pipe, image=portrait, image_size=SIZE, face_expand_ratio=1.2,
                                           multiple_faces="error", allow_missing_identity=False)


def test_a_missing_package_is_named_with_its_pip_command(env, pipeline, portrait, monkeypatch) -> None:
    analyzer = pipeline.face_analyzer
    monkeypatch.setattr(analyzer, "_landmarks", None)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match=r"^HalloFaceMask: .*'mediapipe'.*pip install mediapipe"):
        env.nodes()["HalloFaceMask"].execute(pipeline=pipeline, image=portrait, image_size=SIZE, face_expand_ratio=1.2,
                                             multiple_faces="error", allow_missing_identity=False)


def _tone(seconds, rate, channels):
    t = torch.arange(int(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))
    return {"waveform": wave.repeat(1, channels, 1), "sample_rate": rate}


def test_audio_embed_takes_any_rate_and_channels(run, pipeline) -> None:
    audio = _tone(1.3, 44100, 2)
    hallo_audio, frames, used = run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=False,
                                    mode="auto", clip_length=8)
    assert frames == 33 and hallo_audio.frames == 33  # ceil(1.3 s x 25)
    assert hallo_audio.features.features.shape[0] == 40 and hallo_audio.clip_length == 8
    assert hallo_audio.mode == "hallo" and abs(hallo_audio.seconds - 1.3) < 1e-6
    assert torch.equal(used["waveform"], audio["waveform"]) and used["sample_rate"] == 44100
    long_mode = run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=False, mode="hallo2",
                    clip_length=16)[0]
    assert long_mode.mode == "hallo2" and long_mode.features.features.shape[0] == 48


@pytest.mark.parametrize(
    ("audio", "name", "message"),
    [
        ({"waveform": torch.zeros(2, 1, 16000), "sample_rate": 16000}, "audio", r"batch of 2 tracks"),
        ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 16000}, "audio", r"shorter than one video frame"),
    ],
)
def test_audio_embed_errors_name_the_input(env, run, pipeline, audio, name, message) -> None:
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=rf"HalloAudioEmbed input '{name}': .*{message}"):
        run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=False, mode="auto", clip_length=16)


def test_vocal_separation(run, pipeline) -> None:
    audio = _tone(1.0, 22050, 2)
    plain = run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=False, mode="auto",
                clip_length=16)[0]
    vocals, frames, used = run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=True, mode="auto",
                               clip_length=16)
    assert frames == 25
    # the track as given (before separation), for the video's sound
    assert torch.equal(used["waveform"], audio["waveform"]) and used["sample_rate"] == 22050
    assert not torch.equal(vocals.features.features, plain.features.features)


def test_vocal_separation_without_its_model_names_the_switch(tmp_path, tiny_models) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models / "hallo", ignore=shutil.ignore_patterns("audio_separator", "hallo2"))
    with comfy_env(models) as env:
        nodes = env.nodes()
        pipe = nodes["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto", device="auto",
                                                 attention="auto").args[0]
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError,
                           match=r"HalloAudioEmbed input 'separate_vocals': .*Kim_Vocal_2.onnx"):
            nodes["HalloAudioEmbed"].execute(pipeline=pipe, audio=_tone(1.0, 16000, 1), separate_vocals=True,
                                             mode="auto", clip_length=16)


@pytest.mark.parametrize(
    ("overrides", "name", "message"),
    [
        ({"face_expand_ratio": float("nan")}, "face_expand_ratio", r"face_expand_ratio must be a finite number"),
        ({"face_expand_ratio": 1e9}, "face_expand_ratio", r"face_expand_ratio 1000000000.0 is out of range"),
        ({"image_size": 0}, "image_size", r"image_size 0 cannot be used"),
    ],
)
def test_face_mask_settings_are_checked_before_any_work(env, run, pipeline, portrait, overrides, name, message) -> None:
    InputError = env.module("hallo_pipeline.errors").InputError
    with pytest.raises(InputError, match=rf"HalloFaceMask input '{name}': {message}"):
        _face_mask(run, pipeline, portrait, **overrides)


def test_audio_embed_clip_length_is_checked_against_the_weights(env, run, pipeline) -> None:
    audio = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloAudioEmbed input 'clip_length': clip_length 31 is too long for these weights.*"
                             r"use at most 30"):
        run("HalloAudioEmbed", pipeline=pipeline, audio=audio, separate_vocals=False, mode="auto", clip_length=31)
