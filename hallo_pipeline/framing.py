"""Any photo in, the same photo out: a crop around the face, and the way back into the photo.

    framing = choose_framing(face_box, width, height)      # geometry only, in source pixels
    portrait = crop_to_square(rgb, framing, 512)            # what the model sees
    paste = PasteBack(rgb, framing, max_side=1920)          # built once per video
    for frame in frames:                                    # one frame at a time (streaming)
        writer.write(paste.paste(frame))                    # the whole photo, moving

The crop is a square by default (Hallo works on squares); `aspect` (crop width / height) gives a rectangle
for a model with a rectangular working size (Hallo3's 720 x 480: `choose_framing(..., aspect=Fraction(720,
480))`, `crop_to_size(rgb, framing, (480, 720))`); paste-back takes either.

Only numpy and PIL: nothing heavy is imported, and the geometry needs no pixels at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from .config import CROP_SCALE, FEATHER, FRAMING_OPTIONS, MAX_SIDE
from .errors import InputError

# The part of the square outside the photo is filled by repeating the photo's edge pixels. Reflection
# would mirror the hair, face or shoulders into that strip, which can look like a second face to the
# face detector and to the model (which would then animate it); a smeared edge looks like no face. The
# strip is never pasted back (only the photo's own area is), so its look matters to the model alone.
FILL = "edge"
# The release resizes the reference with antialiased bilinear, so the model sees the crop the same way.
CROP_RESAMPLE = "bilinear"
# Frames are upscaled to the crop size: bicubic keeps them sharper than bilinear (Pillow antialiases it
# too when the output is capped below the crop size).
PASTE_RESAMPLE = "bicubic"
# A first frame with a much flatter or stronger contrast than the photo (a near-uniform frame) must not
# get a wild gain that would amplify its noise for the whole video.
GAIN_RANGE = (0.5, 2.0)
# The smallest cap that still leaves a picture (below it a user surely meant 0, no cap).
MIN_MAX_SIDE = 16
# Colour statistics of the source crop are taken at this size: enough pixels for a stable mean and
# standard deviation, and a 4000x3000 photo is not resampled at full size for them.
STATS_SIZE = 256

Box = tuple[int, int, int, int]  # x0, y0, x1, y1; x1 and y1 exclusive
# A generated frame may differ from the crop's aspect ratio by this much (a frame resized by someone else,
# sides rounded to whole pixels); more is a frame of another crop, which would paste in distorted.
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Framing:
    """The crop of a photo in its own pixels: `crop_width` x `crop_height` from (x0, y0), which may reach
    outside the `width` x `height` photo where the face is near a border or larger than the photo."""

    x0: int
    y0: int
    crop_width: int
    crop_height: int
    width: int  # of the photo
    height: int
    crop_scale: float = CROP_SCALE.default
    fill: str = FILL

    def __post_init__(self) -> None:
        if min(self.crop_width, self.crop_height, self.width, self.height) < 1:
            raise ValueError(f"a framing needs positive sizes, got a {self.crop_width}x{self.crop_height} crop in "
                             f"{self.width}x{self.height}")
        if self.fill != FILL:
            raise ValueError(f"fill {self.fill!r} is not supported; only {FILL!r}")

    @classmethod
    def square(cls, x0: int, y0: int, side: int, width: int, height: int, **options) -> "Framing":
        return cls(x0, y0, side, side, width, height, **options)

    @property
    def is_square(self) -> bool:
        return self.crop_width == self.crop_height

    @property
    def side(self) -> int:
        """The side of a square crop (Hallo's); a rectangle has two, `crop_width` and `crop_height`."""
        if not self.is_square:
            raise ValueError(f"a {self.crop_width}x{self.crop_height} framing is not square: use crop_width and "
                             "crop_height")
        return self.crop_width

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the crop in the photo's pixels."""
        return self.crop_height, self.crop_width

    @property
    def box(self) -> Box:
        return self.x0, self.y0, self.x0 + self.crop_width, self.y0 + self.crop_height

    @property
    def visible(self) -> Box:
        """The part of the crop that lies inside the photo."""
        x0, y0, x1, y1 = self.box
        return max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """Pixels of the crop outside the photo: left, top, right, bottom."""
        x0, y0, x1, y1 = self.box
        return max(-x0, 0), max(-y0, 0), max(x1 - self.width, 0), max(y1 - self.height, 0)


def _check_face_box(face_box: Sequence[float]) -> tuple[float, float, float, float]:
    values = tuple(float(v) for v in face_box)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"face_box must be four finite numbers x0, y0, x1, y1, got {face_box!r}", "face_box")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"face_box {face_box!r} is empty: x1 must exceed x0 and y1 exceed y0", "face_box")
    return values


def _place(centre: float, side: int, limit: int) -> int:
    """Start of a `side` span centred on `centre` (halves round up), shifted to stay inside
    [0, limit); a span longer than the photo is shifted to cover it whole, sticking out both ends."""
    start = math.floor(centre - side / 2 + 0.5)
    low, high = sorted((0, limit - side))
    return min(max(start, low), high)


def _check_aspect(aspect: float | Fraction) -> float | Fraction:
    if isinstance(aspect, bool) or not isinstance(aspect, (int, float, Fraction)):
        raise InputError(f"aspect must be a positive number (crop width / height), got {aspect!r}", "aspect")
    if not (math.isfinite(aspect) and aspect > 0):
        raise InputError(f"aspect must be a positive number (crop width / height), got {aspect!r}", "aspect")
    return aspect


def _crop_sides(short: float, aspect: float | Fraction) -> tuple[int, int]:
    """(width, height) of a crop whose shorter side is about `short` pixels. With a Fraction p/q the shorter
    side is rounded to a multiple of its part of the ratio, so width / height is p/q exactly: the crop then
    scales to the model's working size with no side rounded (a cover crop would cut a pixel row off)."""
    if aspect == 1:
        side = max(1, round(short))  # Hallo's square, computed as it always was
        return side, side
    if isinstance(aspect, Fraction):
        p, q = aspect.numerator, aspect.denominator
        unit = q if aspect > 1 else p  # the shorter side's part of the ratio
        count = max(1, round(short / unit))
        return count * p, count * q
    if aspect > 1:
        height = max(1, round(short))
        return max(1, round(height * aspect)), height
    width = max(1, round(short))
    return width, max(1, round(width / aspect))


def choose_framing(
    face_box: Sequence[float],
    width: int,
    height: int,
    crop_scale: float = CROP_SCALE.default,
    aspect: float | Fraction = 1,
) -> Framing:
    """The crop around a face box (x0, y0, x1, y1, e.g. the face oval's `landmark_box`) in a `width` x
    `height` photo, centred on the box and kept inside the photo where it fits.

    Its shorter side is `crop_scale` x the box's longer side, its width / height `aspect` (1: a square).
    The shorter side carries the scale because that is the side the head has to fit in: a 3:2 crop at the
    default 2.3 frames head, hair and neck as tightly from top to bottom as Hallo's square does (the face
    the same size in the model's picture, measured on real portraits) and shows more shoulders and
    background to the sides; scaling the longer side instead would crowd the head of a wide crop."""
    CROP_SCALE.check(crop_scale)
    aspect = _check_aspect(aspect)
    if min(width, height) < 1:
        raise InputError(f"the photo must have a positive size, got {width}x{height}", "image")
    x0, y0, x1, y1 = _check_face_box(face_box)
    crop_width, crop_height = _crop_sides(crop_scale * max(x1 - x0, y1 - y0), aspect)
    left = _place((x0 + x1) / 2, crop_width, width)
    top = _place((y0 + y1) / 2, crop_height, height)
    return Framing(left, top, crop_width, crop_height, width, height, float(crop_scale))


def check_framing_mode(framing: str) -> str:
    if framing not in FRAMING_OPTIONS:
        raise InputError(
            f"framing={framing!r} is unknown; use 'crop' (a square around the face, pasted back into the photo) or "
            "'stretch' (the whole photo resized to a square, as the original release does)", "framing",
        )
    return framing


def frame_face(
    landmarks: np.ndarray,
    width: int,
    height: int,
    crop_scale: float = CROP_SCALE.default,
    aspect: float | Fraction = 1,
) -> Framing:
    """The framing of a face from its (478, 2) landmarks in the photo's pixels: the crop's shorter side
    is `crop_scale` x the face oval's box (the same box the face mask starts from); see `choose_framing`."""
    from .face.boxes import SILHOUETTE_IDS, landmark_box

    return choose_framing(landmark_box(landmarks, SILHOUETTE_IDS), width, height, crop_scale, aspect)


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """`size` (a square's side, or (height, width)) as (height, width) of positive whole pixels."""
    pair = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in pair):
        raise InputError(f"size must be a positive whole number of pixels or (height, width), got {size!r}", "size")
    return int(pair[0]), int(pair[1])


def landmarks_in_crop(landmarks: np.ndarray, framing: Framing, size: int | Sequence[int]) -> np.ndarray:
    """Landmarks in the photo's pixels -> pixels of the crop resized to `size` (a square's side, or (height,
    width)). Exact, since the crop is a plain translate-and-scale of the photo (mediapipe's points are
    continuous too)."""
    height, width = _size_pair(size)
    scale = [width / framing.crop_width, height / framing.crop_height]
    return (np.asarray(landmarks, dtype=np.float64) - [framing.x0, framing.y0]) * scale


def _check_rgb(rgb: np.ndarray, framing: Framing, name: str) -> None:
    expected = (framing.height, framing.width, 3)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != expected:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise InputError(f"{name} must be a uint8 array of shape {expected} (the framed photo), got {got}", name)


def _resample(name: str):
    from PIL import Image

    return {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[name]


def _visible(rect: tuple[float, float, float, float], canvas: tuple[int, int]) -> Box:
    """The whole canvas pixels (width, height) that a rectangle in canvas coordinates covers."""
    left, top, right, bottom = rect
    return max(0, round(left)), max(0, round(top)), min(canvas[0], round(right)), min(canvas[1], round(bottom))


def _project(
    src: np.ndarray, rect: tuple[float, float, float, float], canvas: tuple[int, int], resample: str
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """`src` stretched onto `rect` (left, top, right, bottom) of a canvas (width, height): the
    resampled pixels that land on the canvas and their corner there; None if none do. Only the
    visible part is resampled, so a huge placement costs no more than the canvas."""
    from PIL import Image

    height, width = src.shape[:2]
    left, top, right, bottom = rect
    scale_x, scale_y = (right - left) / width, (bottom - top) / height
    cx0, cy0, cx1, cy1 = _visible(rect, canvas)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    # The source rectangle that maps onto those canvas pixels (clipped: rounding may reach past an edge).
    box = (
        max(0.0, (cx0 - left) / scale_x),
        max(0.0, (cy0 - top) / scale_y),
        min(float(width), (cx1 - left) / scale_x),
        min(float(height), (cy1 - top) / scale_y),
    )
    pixels = Image.fromarray(src).resize((cx1 - cx0, cy1 - cy0), _resample(resample), box=box)
    return np.asarray(pixels), (cx0, cy0)


def crop_to_size(rgb: np.ndarray, framing: Framing, size: int | Sequence[int]) -> np.ndarray:
    """The framed crop at `size` (a square's side, or (height, width)) as uint8 RGB, resized with
    antialiasing; the part outside the photo repeats its edge pixels (see `FILL`)."""
    _check_rgb(rgb, framing, "image")
    height, width = _size_pair(size)
    scale_x, scale_y = width / framing.crop_width, height / framing.crop_height
    # The photo's own pixels are resampled where they land in the crop, then the rest is filled:
    # a crop far larger than the photo never exists at source resolution.
    rect = (
        -framing.x0 * scale_x,
        -framing.y0 * scale_y,
        (framing.width - framing.x0) * scale_x,
        (framing.height - framing.y0) * scale_y,
    )
    placed = _project(rgb, rect, (width, height), CROP_RESAMPLE)
    if placed is None:  # cannot happen for a framing of this photo; a clear error if it does
        raise InputError("the framing does not overlap the photo", "framing")
    pixels, (left, top) = placed
    pad = ((top, height - top - pixels.shape[0]), (left, width - left - pixels.shape[1]), (0, 0))
    return np.pad(pixels, pad, mode="edge")


def crop_to_square(rgb: np.ndarray, framing: Framing, size: int) -> np.ndarray:
    """A square framing's crop at `size` x `size` (Hallo's portrait); see `crop_to_size`."""
    if not isinstance(size, int) or size < 1:
        raise InputError(f"size must be a positive whole number of pixels, got {size!r}", "size")
    return crop_to_size(rgb, framing, (size, size))


def output_size(width: int, height: int, max_side: int = MAX_SIDE.default) -> tuple[int, int]:
    """The size of the pasted-back video: the photo's, or scaled so its long side is at most
    `max_side` (0: no cap), each side rounded down to an even number (h264 needs even sizes)."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _ramp(start: int, stop: int, near: float | None, far: float | None, band: float) -> np.ndarray:
    """Mask weights of output pixels start..stop-1 along one axis: 1 inside, easing to 0 towards a crop
    edge at `near` / `far` over `band` pixels. An edge given as None lies on the photo's border and
    gets no ramp: the frame covers the picture up to there, so nothing static would show through."""
    centres = np.arange(start, stop, dtype=np.float64) + 0.5
    weight = np.ones_like(centres)
    if band > 0 and near is not None:
        weight *= _smoothstep((centres - near) / band)
    if band > 0 and far is not None:
        weight *= _smoothstep((far - centres) / band)
    return weight.astype(np.float32)


def aspect_matches(frame_size: tuple[int, int], framing: Framing) -> bool:
    """Whether an (h, w) frame has the crop's shape, up to whole-pixel rounding of either and ASPECT_TOLERANCE."""
    (fh, fw), (ch, cw) = frame_size, framing.crop_size
    mismatch = abs(fw * ch - cw * fh)  # |fw/fh - cw/ch| x fh x ch
    return mismatch <= fh + ch or mismatch <= ASPECT_TOLERANCE * cw * fh


def _frame_uint8(frame: np.ndarray, framing: Framing) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise InputError(f"a generated frame must be an H x W x 3 image, got shape {array.shape}", "frame")
    if not aspect_matches(array.shape[:2], framing):
        shape = "a square" if framing.is_square else f"{framing.crop_width} x {framing.crop_height} (width x height)"
        raise InputError(
            f"a generated frame of {array.shape[1]} x {array.shape[0]} pixels does not fit this crop: its frames "
            f"must have the crop's shape, {shape}, at any size; was it made from another face?", "frame",
        )
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"a generated frame must be uint8 or float in [0, 1], got {array.dtype}", "frame")
    if not np.isfinite(array).all():
        raise InputError("a generated frame contains NaN or infinite values", "frame")
    return np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)


def _stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = pixels.reshape(-1, 3).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0)


def check_paste_options(
    feather: float = FEATHER.default, color_match: bool = True, max_side: int = MAX_SIDE.default
) -> None:
    """The paste-back options on their own, so a run can refuse bad ones before any heavy work."""
    FEATHER.check(feather)
    MAX_SIDE.check(max_side)
    if 0 < max_side < MIN_MAX_SIDE:
        raise InputError(f"max_side {max_side} is too small: use 0 (no cap) or at least {MIN_MAX_SIDE}", "max_side")
    if not isinstance(color_match, bool):
        raise InputError(f"color_match must be True or False, got {color_match!r}", "color_match")


class PasteBack:
    """Composites generated frames (the crop's shape: square, or the framing's rectangle) back into the photo
    they were framed from.

    Built once per video; `paste` takes one frame and returns the whole photo with it, so a long video
    of a large photo needs one output image of memory at a time, whatever its length.
    """

    def __init__(
        self,
        image: np.ndarray,
        framing: Framing,
        *,
        feather: float = FEATHER.default,
        color_match: bool = True,
        max_side: int = MAX_SIDE.default,
    ):
        _check_rgb(image, framing, "image")
        check_paste_options(feather, color_match, max_side)
        self.framing = framing
        self.size = output_size(framing.width, framing.height, max_side)
        self._base, self._scale = self._background(image)
        # The band is a fraction of the shorter side (the side a square has): the face's scale in the crop.
        self._mask_axes = self._mask(feather * min(framing.crop_size))
        self._blend_parts = _feathered_parts(*self._mask_axes)
        # Colour match: the photo's statistics now, the frame's on the first paste (then fixed).
        self._target = _stats(crop_to_size(image, framing, _stats_size(framing))) if color_match else None
        self._correction: tuple[np.ndarray, np.ndarray] | None = None

    def _background(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """The photo at the output size, and the scale from photo to output pixels on each axis."""
        from PIL import Image

        width, height = self.size
        if (width, height) == (image.shape[1] // 2 * 2, image.shape[0] // 2 * 2):
            # Uncapped: the photo itself, less an odd last row or column (exact pixels, no resampling);
            # a view, not a copy, so the caller's photo must stay unchanged while frames are pasted.
            return np.ascontiguousarray(image[:height, :width]), (1.0, 1.0)
        scaled = Image.fromarray(image).resize((width, height), _resample(PASTE_RESAMPLE))
        return np.asarray(scaled).copy(), (width / image.shape[1], height / image.shape[0])

    def _footprint(self) -> tuple[float, float, float, float]:
        """The crop in output pixels (the cap may scale the axes a little unevenly)."""
        (x0, y0, x1, y1), (sx, sy) = self.framing.box, self._scale
        return x0 * sx, y0 * sy, x1 * sx, y1 * sy

    def _mask(self, band: float) -> tuple[np.ndarray, np.ndarray]:
        """Separable mask weights over the crop's visible footprint in the output (rows, columns)."""
        f, (sx, sy) = self.framing, self._scale
        left, top, right, bottom = rect = self._footprint()
        cx0, cy0, cx1, cy1 = _visible(rect, self.size)
        x0, y0, x1, y1 = f.box
        cols = _ramp(cx0, cx1, left if x0 > 0 else None, right if x1 < f.width else None, band * sx)
        rows = _ramp(cy0, cy1, top if y0 > 0 else None, bottom if y1 < f.height else None, band * sy)
        return rows, cols

    def _match_colours(self, frame: np.ndarray) -> np.ndarray:
        if self._target is None:
            return frame
        if self._correction is None:  # the first frame fixes the correction for the whole video
            mean, std = _stats(frame)
            target_mean, target_std = self._target
            gain = np.clip(target_std / np.maximum(std, 1e-6), *GAIN_RANGE)
            self._correction = (gain, target_mean - mean * gain)
        gain, offset = self._correction
        return np.round(np.clip(frame * gain + offset, 0, 255)).astype(np.uint8)

    def paste(self, frame: np.ndarray) -> np.ndarray:
        """The photo at the output size with `frame` (the crop's shape, uint8 or float in [0, 1]) in the crop."""
        pixels = self._match_colours(_frame_uint8(frame, self.framing))
        placed = _project(pixels, self._footprint(), self.size, PASTE_RESAMPLE)
        out = self._base.copy()
        if placed is None:
            return out
        generated, (left, top) = placed
        rows, cols = self._mask_axes
        window = slice(top, top + generated.shape[0]), slice(left, left + generated.shape[1])
        target, background = out[window], self._base[window]
        target[...] = generated  # where the mask is 1: the frame itself, no arithmetic
        # The feathered band, strip by strip (two float copies of a strip at a time; a 5 % feather is
        # about a fifth of the crop), with the arithmetic of a blend over the whole crop.
        for part in self._blend_parts:
            weight = (rows[part[0], None] * cols[None, part[1]])[..., None]
            under = background[part].astype(np.float32)
            blended = generated[part].astype(np.float32)
            blended -= under
            blended *= weight
            blended += under
            target[part] = np.rint(blended, out=blended)
        return out


def _stats_size(framing: Framing) -> tuple[int, int]:
    """(height, width) the colour statistics are taken at: the crop, its longer side at most STATS_SIZE."""
    scale = min(1.0, STATS_SIZE / max(framing.crop_size))
    return tuple(max(1, round(side * scale)) for side in framing.crop_size)


def _full_span(weights: np.ndarray) -> tuple[int, int]:
    """Start and end of the run of weight 1 along one mask axis (one run: the ramps only rise, then fall)."""
    full = np.flatnonzero(weights == 1.0)
    return (int(full[0]), int(full[-1]) + 1) if full.size else (0, 0)


def _feathered_parts(rows: np.ndarray, cols: np.ndarray) -> list[tuple[slice, slice]]:
    """The strips of the crop's footprint where the mask is below 1, as (rows, columns) slices: the frame
    is copied over the rest, so a 5 % feather blends about a fifth of the crop instead of all of it."""
    (top, bottom), (left, right) = _full_span(rows), _full_span(cols)
    all_rows, all_cols = slice(0, rows.size), slice(0, cols.size)
    if top == bottom or left == right:
        return [(all_rows, all_cols)]
    parts = [
        (slice(0, top), all_cols),
        (slice(bottom, rows.size), all_cols),
        (slice(top, bottom), slice(0, left)),
        (slice(top, bottom), slice(right, cols.size)),
    ]
    return [(r, c) for r, c in parts if r.stop > r.start and c.stop > c.start]
