"""AnimateDiff-v2 motion module: a temporal transformer over the frames of each pixel."""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import Attention, FeedForward


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """(1, max_len, dim) table: sin on even channels, cos on odd ones (AnimateDiff's encoding).

    Only used to fill a freshly built module; the released weights carry their own
    float16-rounded table, which is what the model was trained with and what we use.
    """
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, max_len, dim)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(max_len, dim), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(
                f"the motion module sees {x.shape[1]} frames but its position table holds {self.pe.shape[1]}; "
                "use a shorter clip length"
            )
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(Attention):
    """Self-attention along time; the position encoding is added to the (normed) input first."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__(dim, heads)
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:  # type: ignore[override]
        """x: (B*F, HW, C) in "(b f)" order -> same shape."""
        bf, hw, c = x.shape
        b = bf // num_frames
        seq = x.view(b, num_frames, hw, c).transpose(1, 2).reshape(b * hw, num_frames, c)
        out = super().forward(self.pos_encoder(seq))
        return out.view(b, hw, num_frames, c).transpose(1, 2).reshape(bf, hw, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int, num_attention_blocks: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, max_len) for _ in range(num_attention_blocks)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = x + attention(norm(x), num_frames)
        return x + self.ff(self.ff_norm(x))


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_len: int, num_attention_blocks: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, heads, max_len, num_attention_blocks)]
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c))
        for block in self.transformer_blocks:
            tokens = block(tokens, num_frames)
        out = self.proj_out(tokens).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return out + x


class MotionModule(nn.Module):
    """Wrapper named like AnimateDiff's `VanillaTemporalModule` (keys `temporal_transformer.*`)."""

    def __init__(self, channels: int, heads: int, max_len: int, num_attention_blocks: int, groups: int):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, max_len, num_attention_blocks, groups)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x: (B*F, C, H, W) in "(b f)" order."""
        return self.temporal_transformer(x, num_frames)
