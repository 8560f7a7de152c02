"""ComfyUI's IMAGE / MASK / AUDIO layouts <-> the library's tensors (plain torch, no ComfyUI)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def chw_to_image(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) or (3, H, W) in [0, 1] -> IMAGE [N, H, W, 3] float32."""
    frames = frames[None] if frames.ndim == 3 else frames
    return frames.float().clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def map_to_mask(region: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """A (h, w) map (uint8 0..255 or float 0..1) -> MASK [1, H, W] float32 at `size` ((H, W), or a side),
    bilinearly resized so it lies over the reference image."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    region = torch.as_tensor(region)
    values = region.float() / 255 if region.dtype == torch.uint8 else region.float()
    if tuple(values.shape[-2:]) != size:
        values = F.interpolate(values[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return values.clamp(0, 1)[None].contiguous()


def single_audio(audio: dict) -> tuple[torch.Tensor, int]:
    """AUDIO {"waveform": [B, C, T], "sample_rate"} -> ((C, T) float32 on the CPU, rate); one item only."""
    from ..hallo_pipeline.audio.io import to_channels_first

    waveform = torch.as_tensor(audio["waveform"]).detach().float().cpu()
    return torch.from_numpy(to_channels_first(waveform.numpy())), int(audio["sample_rate"])


def make_audio(waveform: torch.Tensor, sample_rate: int) -> dict:
    """(C, T) -> AUDIO with a batch of one."""
    return {"waveform": waveform[None].contiguous(), "sample_rate": int(sample_rate)}


def cut_audio(waveform: torch.Tensor, sample_rate: int, start_seconds: float, seconds: float) -> torch.Tensor:
    """(C, T) cut to [start, start + seconds), padded with silence where the track is shorter."""
    start = int(round(start_seconds * sample_rate))
    length = int(round(seconds * sample_rate))
    piece = waveform[:, start : start + length]
    if piece.shape[1] < length:
        piece = F.pad(piece, (0, length - piece.shape[1]))
    return piece


def rgb_to_image(rgb) -> torch.Tensor:
    """A (H, W, 3) uint8 array -> IMAGE [1, H, W, 3] float32."""
    return (torch.from_numpy(rgb).float() / 255)[None].contiguous()
