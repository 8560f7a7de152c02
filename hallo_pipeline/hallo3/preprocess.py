"""Hallo3's inputs from a portrait and a speech track (SPEC §9-§10), and its output frames.

    portrait = prepare_portrait(rgb, landmarks)           # image + face-box reference at 480 x 720, [-1, 1]
    motion = drop_motion_pixels(frames, motion_drop_map(noise, size))
    audio = encode_audio(AudioEncoder.from_models_dir(root), waveform, sample_rate)
    video_u8 = frames_to_uint8(video, square=portrait.square)

Geometry (QUIRKs of the release, kept): a square photo is resized (bilinear, antialiased) to H x H and
zero-padded left and right to H x W, and the output is cropped back to the square; any other photo is
resized (bicubic, antialiased, integer sizes truncated) to cover H x W and centre-cropped, without
clamping the bicubic overshoot. torchvision's tensor `Resize`, which the release calls, is
`F.interpolate(..., antialias=True)`; we call that directly (bit-identical on the fixtures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..face.boxes import SILHOUETTE_IDS, Box, box_mask, expand_box, landmark_box
from .noise import NoiseSource

if TYPE_CHECKING:
    from ..audio.features import AudioEncoder, AudioFeatures
    from ..audio.separation import VocalSeparator

WORKING_SIZE = (480, 720)  # (H, W) the released model works at
FACE_BOX_EXPAND_RATIO = 1.2
MOTION_DROP_RATE = 0.1  # fraction of motion-frame pixels zeroed in every segment
SEGMENT_FRAMES = 49  # video frames per segment (13 latent frames); the audio is padded to whole segments


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(h, w, 3) uint8 RGB -> (1, 3, h, w) float32 in [0, 1] (value / 255, as torchvision's ToTensor)."""
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1:
        raise InputError(
            f"image must be an RGB picture (height x width x 3, uint8); got shape {array.shape}, dtype {array.dtype}",
            "image",
        )
    return torch.tensor(array).permute(2, 0, 1)[None].to(torch.float32).div(255)  # a copy: PIL's arrays are read-only


def _check_image(image: torch.Tensor) -> tuple[int, int]:
    ok = isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[:2] == (1, 3)
    if not (ok and image.is_floating_point()):
        described = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"image must be a (1, 3, height, width) float tensor in [0, 1]; got {described}", "image")
    height, width = image.shape[-2:]
    if height < 1 or width < 1:
        raise InputError(f"image is empty ({height} x {width} pixels)", "image")
    return int(height), int(width)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    height, width = (int(s) for s in size)
    if not 0 < height <= width:
        raise ValueError(f"working size {tuple(size)} must be landscape or square (0 < height <= width)")
    return height, width


def face_box_mask(
    landmarks: np.ndarray, width: int, height: int, expand_ratio: float = FACE_BOX_EXPAND_RATIO
) -> tuple[Box, np.ndarray]:
    """The face-oval box of the 478 landmarks (pixels), expanded by `expand_ratio` with Hallo's integer
    arithmetic, and the hard (height, width) uint8 mask that is 255 inside it: no blur (SPEC §9.2)."""
    box = expand_box(landmark_box(landmarks, SILHOUETTE_IDS), expand_ratio, width, height)
    return box, box_mask(box, height, width)


def apply_face_mask(image: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """The reference image: pixels outside the face box black, at the photo's own resolution (before
    any resize, QUIRK SPEC §9.2). The release reads the mask back from a PNG as [0, 1] values."""
    height, width = _check_image(image)
    if tuple(mask.shape) != (height, width):
        raise ValueError(f"mask {tuple(mask.shape)} does not match the image's {height} x {width} pixels")
    weights = torch.from_numpy(np.ascontiguousarray(mask)).to(device=image.device, dtype=image.dtype) / 255
    return image * weights


def fit_to_working_size(image: torch.Tensor, size: Sequence[int] = WORKING_SIZE) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (1, 3, H, W) by the release's two rules (SPEC §9.3, module docstring)."""
    height, width = _check_image(image)
    out_h, out_w = _check_size(size)
    resized, (top, left) = _placement(height, width, out_h, out_w)
    if height == width:
        square = F.interpolate(image, size=resized, mode="bilinear", align_corners=False, antialias=True)
        return F.pad(square, (left, out_w - out_h - left)).clamp(0, 1)
    cover = F.interpolate(image, size=resized, mode="bicubic", align_corners=False, antialias=True)
    return cover[..., top : top + out_h, left : left + out_w]


def _placement(height: int, width: int, out_h: int, out_w: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where an h x w photo lands in the H x W working image: its resized (height, width), and the (top, left)
    of the working image in it (a cover crop) or of it in the working image (a square's padding, top 0)."""
    if height == width:
        return (out_h, out_h), (0, (out_w - out_h) // 2)
    # The release's own expressions, including the int() truncation, so the sizes match it.
    if width / height > out_w / out_h:
        resized = (out_h, int(width * out_h / height))
    else:
        resized = (int(height * out_w / width), out_w)
    return resized, ((resized[0] - out_h) // 2, (resized[1] - out_w) // 2)


def working_coordinates(
    points: np.ndarray, height: int, width: int, size: Sequence[int] = WORKING_SIZE
) -> np.ndarray:
    """(n, 2) pixel points (x, y) of an h x w photo -> pixels of the working image `fit_to_working_size` makes
    of it (pixel edges scale, as in the resize; the crop or padding shifts them)."""
    out_h, out_w = _check_size(size)
    (resized_h, resized_w), (top, left) = _placement(height, width, out_h, out_w)
    scaled = np.asarray(points, dtype=np.float64) * [resized_w / width, resized_h / height]
    return scaled + ([left, 0] if height == width else [-left, -top])


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the VAE's input range."""
    return image * 2 - 1


@dataclass(frozen=True)
class PreparedPortrait:
    image: torch.Tensor  # (1, 3, H, W) in [-1, 1]: frame 0 of every segment's 3-frame encode
    reference: torch.Tensor  # (1, 3, H, W) in [-1, 1]: the face box only, for the reference latent
    face_box: Box  # x0, y0, x1, y1 in the photo's pixels (end exclusive)
    face_mask: np.ndarray  # (h, w) uint8 {0, 255} at the photo's resolution
    square: bool  # the photo was square: the output frames are cropped back to H x H

    @property
    def working_size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


def prepare_portrait(
    image: np.ndarray | torch.Tensor,
    landmarks: np.ndarray,
    size: Sequence[int] = WORKING_SIZE,
    expand_ratio: float = FACE_BOX_EXPAND_RATIO,
) -> PreparedPortrait:
    """The portrait's two model inputs from the photo (uint8 RGB (h, w, 3), or (1, 3, h, w) in [0, 1])
    and its 478 face landmarks in pixels."""
    pixels = rgb_to_tensor(image) if isinstance(image, np.ndarray) else image
    height, width = _check_image(pixels)
    box, mask = face_box_mask(landmarks, width, height, expand_ratio)
    return PreparedPortrait(
        image=to_model_range(fit_to_working_size(pixels, size)),
        reference=to_model_range(fit_to_working_size(apply_face_mask(pixels, mask), size)),
        face_box=box,
        face_mask=mask,
        square=height == width,
    )


def motion_drop_map(noise: NoiseSource, size: Sequence[int]) -> torch.Tensor:
    """One uniform (H, W) draw per segment (the release's `rand(H, W)`), shared by both motion frames."""
    return noise.rand(tuple(int(s) for s in size))


def drop_motion_pixels(frames: torch.Tensor, draw: torch.Tensor, rate: float = MOTION_DROP_RATE) -> torch.Tensor:
    """Zero (mid-grey in [-1, 1]) the pixels whose `draw` is at most `rate`: one (H, W) map for every
    frame and channel of `frames` (..., H, W) (SPEC §9.4)."""
    if tuple(draw.shape) != tuple(frames.shape[-2:]):
        raise ValueError(f"drop map {tuple(draw.shape)} does not match the frames' {tuple(frames.shape[-2:])}")
    keep = (draw > rate).to(device=frames.device, dtype=frames.dtype)
    return frames * keep


def frames_to_uint8(frames: torch.Tensor, square: bool = False) -> torch.Tensor:
    """(t, 3, H, W) in [0, 1] -> (t, H, W', 3) uint8 by truncation (not rounding), as the release writes
    them; `square`: centre-cropped to W' = H (the padding a square photo got is removed)."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (t, 3, H, W); got {tuple(frames.shape)}")
    u8 = (frames.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    if square:
        height, width = frames.shape[-2:]
        left = (width - height) // 2
        u8 = u8[:, :, left : left + height]
    return u8


def encode_audio(
    encoder: "AudioEncoder",
    waveform,
    sample_rate: int,
    *,
    separator: "VocalSeparator | None" = None,
    segment_frames: int = SEGMENT_FRAMES,
) -> "AudioFeatures":
    """Hallo's audio chain (SPEC §10) with Hallo3's clip length: the waveform is padded with silence to
    whole 49-frame segments after its normalisation, and each frame's window i-2..i+2 is clamped to the
    padded sequence. `features.frames` is the true length the video is cut to."""
    return encoder.encode(waveform, sample_rate, clip_length=segment_frames, separator=separator)
