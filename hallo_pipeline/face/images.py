"""Turn whatever image the user gives into RGB uint8: any path, PIL image, array or tensor, checked and converted."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError

# The detectors look for faces in downscaled copies (mediapipe: 128 px, SCRFD: 640 px); below this
# a face has too few pixels to be found or to give landmarks worth animating.
MIN_IMAGE_SIDE = 64
# Larger images are refused, not shrunk: the result is pasted back into the user's own photo at its
# own size, and a silent resize would change that. The number is PIL's own decompression-bomb limit
# (2 x PIL.Image.MAX_IMAGE_PIXELS, about 13400 x 13400), above which PIL cannot open a file anyway;
# it leaves every camera photo up to 179 megapixels readable.
MAX_IMAGE_PIXELS = 178_956_970

ImageLike = Any  # path, PIL image, uint8/float numpy HWC, float torch HWC (or a batch of one)


def _too_large(what: str, limit: int) -> InputError:
    return InputError(
        f"{what}, more than the limit of {limit / 1e6:.1f} megapixels; scale it down and try again (Hallo "
        "works on the face at 512x512 pixels, so 4096 pixels on the long side is plenty)"
    )


def _check_pixel_count(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(f"{what} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels)", MAX_IMAGE_PIXELS)


def _check_array_size(shape: tuple[int, ...], name: str) -> None:
    """The pixel limit on an (optionally batched) HWC or HW array, before any conversion copies it."""
    if len(shape) in (3, 4):
        height, width = shape[-3], shape[-2]
    elif len(shape) == 2:
        height, width = shape
    else:
        return  # not an image shape: _from_array explains what is wrong
    _check_pixel_count(int(width), int(height), name)


def _read_file(path: Path, name: str, decode: bool = True):
    """The decoded PIL image of a file, upright; huge and unreadable files give an InputError.
    With `decode=False` only the header is read and checked (nothing is returned)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    what = f"{name} file {str(path)!r}"
    try:
        with warnings.catch_warnings():
            # Our own limit applies (checked on the header, before decoding); PIL's warning for
            # images above half of it would only be noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_pixel_count(*opened.size, what)
                if not decode:
                    return None
                opened.load()
                return ImageOps.exif_transpose(opened)  # phone photos store their rotation in EXIF
    except Image.DecompressionBombError as exc:
        # Past PIL's own limit PIL refuses to open the file; it tells the pixel count, not the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else f"too many pixels ({exc})"
        limit = min(MAX_IMAGE_PIXELS, 2 * (Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS))
        raise _too_large(f"{what} has {pixels}", limit) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{what} is not an image that can be read ({exc})") from exc


def _from_pil(image, name: str) -> np.ndarray:
    from PIL import Image

    _check_pixel_count(*image.size, name)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: PIL's convert("RGB") would clip it to 255 instead of scaling it.
        return _from_array(np.asarray(image).astype(np.uint16), name)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Composite onto white so transparent areas get a defined colour (convert("RGB") would
        # expose whatever colour the transparent pixels happen to store).
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(f"{name} contains NaN or infinite pixel values; pass a valid image")
        # Round (not truncate) so that an 8-bit image that went through float [0, 1] comes back exact.
        return np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    raise InputError(f"{name} has pixel type {array.dtype}; pass uint8 (0..255) or float (0..1) pixels")


def _from_array(array: np.ndarray, name: str) -> np.ndarray:
    _check_array_size(array.shape, name)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise InputError(
                f"{name} is a batch of {array.shape[0]} images; Hallo animates one portrait, so pass a single image"
            )
        array = array[0]
    if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4) and array.shape[0] in (1, 3, 4):
        raise InputError(
            f"{name} has shape {tuple(array.shape)}, which looks channels-first; pass height x width x channels"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise InputError(
            f"{name} has shape {tuple(array.shape)}; expected height x width (grey) or height x width x 1/3/4 channels"
        )
    pixels = _to_uint8(array, name)
    channels = pixels.shape[-1]
    if channels in (2, 4):  # grey+alpha / RGBA: composite onto white, as for PIL images
        alpha = pixels[..., -1:].astype(np.float64) / 255
        colour = pixels[..., :-1].astype(np.float64)
        pixels = np.round(colour * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels)


def to_rgb_uint8(image: ImageLike, name: str = "image") -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path, PIL image, numpy array or torch tensor (HWC).

    Greyscale, palette and images with transparency are converted (transparency onto white).
    """
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"{name} file {str(path)!r} does not exist")
        rgb = _from_pil(_read_file(path, name), name)
    elif isinstance(image, Image.Image):
        rgb = _from_pil(image, name)
    elif isinstance(image, torch.Tensor):
        _check_array_size(tuple(image.shape), name)
        pixels = image.detach().to("cpu")
        if pixels.is_floating_point():
            pixels = pixels.double()  # half / bfloat16 have no numpy equivalent
        rgb = _from_array(pixels.numpy(), name)
    elif isinstance(image, np.ndarray):
        rgb = _from_array(image, name)
    else:
        raise InputError(
            f"{name} is a {type(image).__name__}; pass a file path, a PIL image, a numpy array or a torch tensor"
        )
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputError(
            f"{name} is {width}x{height} pixels, smaller than the face detector can use (at least "
            f"{MIN_IMAGE_SIDE} pixels per side); use a larger portrait, ideally {512}x{512} with the face "
            "filling half of it"
        )
    return rgb


def check_image_file(path: str | Path, name: str = "image") -> Path:
    """The image file exists, PIL recognises it and it is not too large: its header only, nothing
    is decoded, so a run can check its inputs before any heavy work."""
    path = Path(path).expanduser()
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"{name} file {str(path)!r} {reason}; give the path of a portrait photo", name)
    _read_file(path, name, decode=False)
    return path
