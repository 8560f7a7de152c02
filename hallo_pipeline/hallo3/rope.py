"""3D rotary position embedding of the DiT's video tokens (SPEC §4.3).

Written here rather than taken from diffusers: diffusers' CogVideoX RoPE is the 5B-I2V variant on
a crop grid, while the release's table is a plain (t, h, w) grid whose float32 values the checkpoint
stores (`freqs_sin/cos`); this reproduces them bit for bit.
"""

from __future__ import annotations

import torch

from .config import DiTConfig

THETA = 10000.0


def _axis_angles(positions: int, dims: int) -> torch.Tensor:
    """(positions, dims): position x 1/theta^(2j/dims), each angle repeated for its (x0, x1) pair."""
    inv = 1.0 / (THETA ** (torch.arange(0, dims, 2, dtype=torch.float32) / dims))
    return (torch.arange(positions, dtype=torch.float32)[:, None] * inv[None]).repeat_interleave(2, dim=-1)


def rope_angles(frames: int, rows: int, cols: int, dims: tuple[int, int, int]) -> torch.Tensor:
    """(frames*rows*cols, sum(dims)) angles in token order (t, h, w row-major): [t ; h ; w] per token."""
    t = _axis_angles(frames, dims[0])[:, None, None].expand(frames, rows, cols, -1)
    h = _axis_angles(rows, dims[1])[None, :, None].expand(frames, rows, cols, -1)
    w = _axis_angles(cols, dims[2])[None, None, :].expand(frames, rows, cols, -1)
    return torch.cat([t, h, w], dim=-1).reshape(frames * rows * cols, -1)


def rope_tables(config: DiTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (video_tokens, head_dim), float32 on the default device: the checkpoint's
    freqs_cos / freqs_sin."""
    angles = rope_angles(config.latent_frames, *config.grid, config.rope_dims)
    return angles.cos(), angles.sin()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1) -> (-x1, x0) on consecutive pairs of the last dim."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (..., tokens, head_dim) with tables (tokens, head_dim); computed in float32 (the tables' precision)."""
    xf = x.float()
    return (xf * cos + rotate_pairs(xf) * sin).to(x.dtype)
