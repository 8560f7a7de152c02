"""Every image form a user or ComfyUI passes becomes RGB uint8; bad ones get a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hallo_pipeline.errors import InputError
from hallo_pipeline.face.images import MIN_IMAGE_SIDE, to_rgb_uint8


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)


def test_float_round_trip_is_exact(rgb) -> None:
    as_float = torch.from_numpy(rgb).float() / 255  # what ComfyUI's LoadImage gives
    assert np.array_equal(to_rgb_uint8(as_float), rgb)
    assert np.array_equal(to_rgb_uint8(as_float[None]), rgb)  # IMAGE batch of one
    assert np.array_equal(to_rgb_uint8(as_float.double().numpy()), rgb)
    assert to_rgb_uint8(as_float.bfloat16()).shape == rgb.shape  # reduced precision: not exact, but accepted


def test_path_pil_and_array_agree(rgb, tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    for image in (path, str(path), Image.fromarray(rgb), rgb):
        assert np.array_equal(to_rgb_uint8(image), rgb)


def test_greyscale_palette_and_16_bit_are_converted(rgb) -> None:
    grey = rgb[..., 0]
    for image in (Image.fromarray(grey), grey, grey[..., None]):
        out = to_rgb_uint8(image)
        assert out.shape == (*grey.shape, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))
    palette = Image.fromarray(rgb).quantize(16)
    assert np.array_equal(to_rgb_uint8(palette), np.asarray(palette.convert("RGB")))
    wide = grey.astype(np.uint16) * 257  # 16-bit greyscale
    assert np.array_equal(to_rgb_uint8(Image.fromarray(wide))[..., 0], grey)
    assert np.array_equal(to_rgb_uint8(wide)[..., 1], grey)


def test_transparency_becomes_white(rgb) -> None:
    alpha = np.zeros(rgb.shape[:2], dtype=np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 255  # left half opaque, right half transparent
    rgba = np.dstack([rgb, alpha])
    for image in (Image.fromarray(rgba, "RGBA"), rgba):
        out = to_rgb_uint8(image)
        half = rgb.shape[1] // 2
        assert np.array_equal(out[:, :half], rgb[:, :half])
        assert (out[:, half:] == 255).all()


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((32, 200, 3), np.uint8), rf"32 pixels.*smaller than the face detector can use.*{MIN_IMAGE_SIDE}"),
        (np.zeros((2, 96, 96, 3), np.float32), "batch of 2 images"),
        (np.zeros((3, 96, 96), np.float32), "channels-first"),
        (np.full((96, 96, 3), np.nan, np.float32), "NaN"),
        (np.zeros((96, 96, 5), np.uint8), "expected height x width"),
        (np.zeros((96, 96, 3), np.complex64), "pixel type"),
        ([[1, 2], [3, 4]], "pass a file path, a PIL image"),
    ],
)
def test_bad_images_are_explained(image, message) -> None:
    with pytest.raises(InputError, match=message):
        to_rgb_uint8(image, name="image")


def test_unreadable_files_are_explained(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        to_rgb_uint8(tmp_path / "missing.png")
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not an image")
    with pytest.raises(InputError, match="not an image that can be read"):
        to_rgb_uint8(bogus)


def test_large_image_is_fine() -> None:
    big = np.zeros((3000, 4000, 3), np.uint8)
    assert to_rgb_uint8(big).shape == (3000, 4000, 3)


def _png_header(width: int, height: int) -> bytes:
    """The start of an RGB PNG claiming `width` x `height` pixels: enough for PIL to read the size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def test_huge_image_file_is_refused_before_decoding(tmp_path) -> None:
    """15000x15000 (225 megapixels): PIL would stop with DecompressionBombError; we say what to do."""
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(15000, 15000))
    with pytest.raises(InputError, match=r"image file '[^']*huge\.png' has 225\.0 megapixels.*limit.*scale it down"):
        to_rgb_uint8(path)


@pytest.mark.parametrize("kind", ["file", "pil", "array", "tensor"])
def test_image_over_the_pixel_limit_is_refused_with_its_size(tmp_path, monkeypatch, rgb, kind) -> None:
    from hallo_pipeline.face import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100 * 100)  # rgb is 128x96
    image = {"pil": Image.fromarray(rgb), "array": rgb, "tensor": torch.from_numpy(rgb).float() / 255}.get(kind)
    if kind == "file":
        image = tmp_path / "big.png"
        Image.fromarray(rgb).save(image)
    message = r"is 128x96 pixels \(0\.0 megapixels\), more than the limit of 0\.0 megapixels.*scale it down"
    with pytest.raises(InputError, match=message):
        to_rgb_uint8(image, name="image")


def test_image_between_pil_warning_and_our_limit_reads_without_warning(tmp_path, monkeypatch, rgb) -> None:
    """PIL warns (DecompressionBombWarning) above its own limit; below ours the image is simply read."""
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 50)  # PIL warns above 5000 and refuses above 10000 pixels
    path = tmp_path / "p.png"
    Image.fromarray(rgb[:96, :96]).save(path)  # 9216 pixels: PIL would warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.array_equal(to_rgb_uint8(path), rgb[:96, :96])
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []
