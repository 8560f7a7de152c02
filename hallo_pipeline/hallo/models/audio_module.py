"""Hierarchical audio-driven attention (the paper's HADVS, SPEC §4).

Each frame's tokens cross-attend to that frame's audio tokens three times, once per region
(full/pose, face/expression, lip); each result is masked to its region, passed through its
own 1x1 "zero conv" and added with the user's region weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...config import RegionWeights
from .attention import Attention, FeedForward


@dataclass
class RegionMasks:
    """Token masks of one resolution level, each (H*W,) in [0, 1], row-major."""

    full: torch.Tensor
    face: torch.Tensor
    lip: torch.Tensor


class AudioTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, audio_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2_0 = Attention(dim, heads, audio_dim)  # full / pose region
        self.attn2_1 = Attention(dim, heads, audio_dim)  # face / expression region
        self.attn2_2 = Attention(dim, heads, audio_dim)  # lip region
        self.zero_conv_full = nn.Conv2d(dim, dim, 1)
        self.zero_conv_face = nn.Conv2d(dim, dim, 1)
        self.zero_conv_lip = nn.Conv2d(dim, dim, 1)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    @staticmethod
    def _region(attention: Attention, conv: nn.Conv2d, n, audio, mask, hw: tuple[int, int]) -> torch.Tensor:
        out = attention(n, audio) * mask.to(n.dtype)[None, :, None]
        rows, _, dim = out.shape
        spatial = out.reshape(rows, hw[0], hw[1], dim).permute(0, 3, 1, 2)
        return conv(spatial).permute(0, 2, 3, 1).reshape(rows, -1, dim)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor, masks: RegionMasks, weights: RegionWeights, hw: tuple[int, int]
    ) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        n = self.norm2(x)
        x = (
            x
            + weights.pose * self._region(self.attn2_0, self.zero_conv_full, n, audio, masks.full, hw)
            + weights.face * self._region(self.attn2_1, self.zero_conv_face, n, audio, masks.face, hw)
            + weights.lip * self._region(self.attn2_2, self.zero_conv_lip, n, audio, masks.lip, hw)
        )
        return x + self.ff(self.norm3(x))


class AudioModule(nn.Module):
    """GroupNorm -> 1x1 conv to the inner width -> audio transformer block -> 1x1 conv back, residual.

    Release quirk: the inner width is the *block's* input channel count, not the layer's
    (e.g. 320 inside the 640-channel layers of down block 1); `inner_channels` carries it.
    """

    def __init__(self, channels: int, inner_channels: int, heads: int, audio_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner_channels, 1)
        self.transformer_blocks = nn.ModuleList([AudioTransformerBlock(inner_channels, heads, audio_dim)])
        self.proj_out = nn.Conv2d(inner_channels, channels, 1)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor, masks: RegionMasks, weights: RegionWeights
    ) -> torch.Tensor:
        """x: (N, C, H, W) frame rows; audio: (N, tokens, audio_dim), each row's own frame tokens."""
        n, _, h, w = x.shape
        inner = self.proj_in(self.norm(x))
        tokens = inner.permute(0, 2, 3, 1).reshape(n, h * w, inner.shape[1])
        for block in self.transformer_blocks:
            tokens = block(tokens, audio, masks, weights, (h, w))
        out = self.proj_out(tokens.reshape(n, h, w, -1).permute(0, 3, 1, 2))
        return out + x
