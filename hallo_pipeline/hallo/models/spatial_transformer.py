"""Spatial transformer (SD-1.5 `Transformer2DModel` with one block) and its reference attention.

The same class serves both UNets. In the reference UNet it *records* each block's `norm1`
output (the ReferenceNet features, SPEC §5); in the denoising UNet it *reads* them: the
rows that carry reference tokens attend to [own tokens ; reference tokens], the others do
plain self-attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import Attention, FeedForward


@dataclass
class ReferenceTokens:
    """Reference-image tokens for one transformer block of the denoiser.

    The last `len(index)` rows of the batch (the conditional CFG half) attend to
    `tokens[index[j]]` in addition to their own tokens; earlier rows use plain
    self-attention (the unconditional half sees no reference, SPEC §7).
    """

    tokens: torch.Tensor  # (R, S, C): the distinct reference rows
    index: torch.Tensor  # (M,) long: which of the R rows each referenced batch row uses


class TransformerBlock(nn.Module):
    """norm1 -> self/reference attention -> norm2 -> cross-attention -> norm3 -> GEGLU, each residual."""

    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def reference_attention(self, n: torch.Tensor, reference: ReferenceTokens) -> torch.Tensor:
        m = reference.index.numel()
        plain, referenced = n[: n.shape[0] - m], n[n.shape[0] - m :]
        # Project the few distinct reference rows once, then gather per batch row.
        ref = reference.tokens.to(n.dtype)
        ref_k = self.attn1.to_k(ref)[reference.index]
        ref_v = self.attn1.to_v(ref)[reference.index]
        q, k, v = self.attn1.to_q(referenced), self.attn1.to_k(referenced), self.attn1.to_v(referenced)
        out_ref = self.attn1.attend(q, torch.cat([k, ref_k], dim=1), torch.cat([v, ref_v], dim=1))
        if plain.shape[0] == 0:
            return out_ref
        return torch.cat([self.attn1(plain), out_ref], dim=0)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        reference: ReferenceTokens | None = None,
        record: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        n = self.norm1(x)
        if record is not None:
            record.append(n)
        x = x + (self.attn1(n) if reference is None else self.reference_attention(n, reference))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """GroupNorm -> 1x1 conv -> transformer block over H*W tokens -> 1x1 conv, residual."""

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(channels, heads, context_dim)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        reference: ReferenceTokens | None = None,
        record: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x: (N, C, H, W); context: (N, tokens, context_dim)."""
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(n, h * w, c)
        for block in self.transformer_blocks:
            tokens = block(tokens, context, reference=reference, record=record)
        out = self.proj_out(tokens.reshape(n, h, w, c).permute(0, 3, 1, 2))
        return out + x
