"""HalloPasteBack: square frames + a crop-framed HALLO_FACE -> the whole photo, at its size, frame by frame."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import astronaut

SIZE = 128


@pytest.fixture(scope="module")
def pipeline(run):
    return run("HalloModelLoader", model_folder="hallo", variant="auto", precision="auto", device="auto",
               attention="auto")[0]


def _image(rgb):
    return torch.from_numpy(rgb.astype(np.float32) / 255)[None]


def _face_mask(run, pipeline, photo, framing="crop"):
    return run("HalloFaceMask", pipeline=pipeline, image=photo, image_size=SIZE, face_expand_ratio=1.2,
               multiple_faces="error", allow_missing_identity=False, framing=framing, crop_scale=2.3)


@pytest.fixture(scope="module", params=[(0, 64, 512, 384), (0, 0, 288, 512)], ids=["3:4", "16:9"])
def photo(request):
    """The astronaut cut to 3:4 (384x512) and 16:9 (512x288): (IMAGE, the same as uint8)."""
    rgb = astronaut(*request.param)
    return _image(rgb), rgb


@pytest.fixture(scope="module")
def analysed(run, pipeline, photo):
    """Hallo Face Mask's face and reference image (the crop at the working size) for the photo."""
    face, reference, *_ = _face_mask(run, pipeline, photo[0])
    return face, reference


def _paste(run, images, face, **overrides):
    options = dict(feather=0.05, color_match=True, max_side=0)
    return run("HalloPasteBack", images=images, face=face, **{**options, **overrides})[0]


def test_the_output_has_the_photos_size_and_aspect(run, photo, analysed) -> None:
    image, rgb = photo
    face, _ = analysed
    frames = torch.rand(3, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    out = _paste(run, frames, face)
    assert out.shape == (3, *rgb.shape) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    capped = _paste(run, frames, face, max_side=256)
    height, width = rgb.shape[:2]
    assert capped.shape == (3, *((256, 192) if height > width else (144, 256)), 3)  # the cap on the long side
    # any square size: frames upscaled 2x give the same size, and nearly the same picture
    upscaled = F.interpolate(frames.movedim(-1, 1), scale_factor=2, mode="nearest").movedim(1, -1)
    assert _paste(run, upscaled, face).shape == out.shape


def test_the_crop_pasted_back_gives_the_photo_again(run, photo, analysed) -> None:
    """Frames that are the face's crop itself (what the model saw) paste back into the photo unchanged."""
    image, rgb = photo
    face, reference = analysed
    out = _paste(run, reference.repeat(2, 1, 1, 1), face)
    assert torch.equal(out[0], out[1])
    error = (out[0] - image[0]).abs()
    assert error.mean() < 0.01  # the crop went through image_size and back; the rest is the photo itself
    x0, y0, x1, y1 = face.framing.visible
    outside = torch.ones(rgb.shape[:2], dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert error[outside].max() < 1e-6 and error[~outside].mean() < 0.025  # random frames: 0.27
    # a hard edge and no colour match paste the same picture, within the resampling
    plain = _paste(run, reference, face, feather=0.0, color_match=False)
    assert (plain[0] - image[0]).abs().mean() < 0.01


def test_a_stretched_face_asks_for_framing_crop(env, run, pipeline) -> None:
    face = _face_mask(run, pipeline, _image(astronaut(left=64, width=384)), framing="stretch")[0]
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloPasteBack input 'face': .*framing 'stretch'.*"
                             r"set Hallo Face Mask's framing to 'crop'"):
        _paste(run, torch.rand(1, SIZE, SIZE, 3), face)


@pytest.mark.parametrize(
    ("overrides", "name", "message"),
    [
        ({"images": torch.rand(2, SIZE, 2 * SIZE, 3)}, "images",
         r"images must be frames \[frames, height, width, 3\] of the face's crop shape .*\[2, 128, 256, 3\]"),
        ({"feather": 0.9}, "feather", r"feather 0.9 is out of range"),
        ({"max_side": 5}, "max_side", r"max_side 5 is too small: use 0 \(no cap\) or at least 16"),
    ],
)
def test_bad_inputs_are_named(env, run, analysed, overrides, name, message) -> None:
    inputs = {"images": torch.rand(2, SIZE, SIZE, 3), "face": analysed[0], **overrides}
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=rf"HalloPasteBack input '{name}': {message}"):
        _paste(run, **inputs)


def test_a_batch_larger_than_the_free_memory_names_the_max_side_that_fits(env, run, photo, analysed,
                                                                           monkeypatch) -> None:
    """ComfyUI's IMAGE batches are float32: the node refuses before it allocates one that would not fit."""
    _, rgb = photo
    face, _ = analysed
    frames = torch.rand(8, SIZE, SIZE, 3)
    full = 8 * rgb.shape[0] * rgb.shape[1] * 3 * 4
    paste_back = env.module("nodes.paste_back")
    monkeypatch.setattr(paste_back, "free_memory", lambda: full // 3)
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloPasteBack input 'max_side': 8 frames of \d+x\d+ need \d+ MiB as a ComfyUI IMAGE "
                             r"batch \(float32\), more than .* free now allows; set max_side to (\d+) or less") as e:
        _paste(run, frames, face)
    side = int(re.search(r"set max_side to (\d+)", str(e.value)).group(1))
    assert side % 8 == 0 and side < max(rgb.shape)
    out = _paste(run, frames, face, max_side=side)  # the suggestion fits
    assert max(out.shape[1:3]) <= side and out[0].numel() * 8 * 4 <= full // 3 * paste_back.MEMORY_SHARE
    with pytest.raises(env.module("hallo_pipeline.errors").InputError, match=r"max_side"):
        _paste(run, frames, face, max_side=side + 64)
    monkeypatch.setattr(paste_back, "free_memory", lambda: 1000)
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"even at the smallest max_side; free memory or make a shorter video"):
        _paste(run, frames, face)


def test_without_psutil_there_is_no_memory_check(env, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    assert env.module("nodes.paste_back").free_memory() is None
    env.module("nodes.paste_back").check_memory(10**6, 4000, 3000, 0, None)  # nothing to compare with: no error


def test_progress_per_frame_and_cancel_between_frames(env, run, analysed) -> None:
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append((value, total))
        if value == 2:  # the user presses Cancel after the second frame
            env.mm.interrupt_current_processing()

    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(env.mm.InterruptProcessingException):
            _paste(run, torch.rand(5, SIZE, SIZE, 3), analysed[0])
    finally:
        utils.set_progress_bar_global_hook(None)
    assert seen == [(1, 5), (2, 5)]
