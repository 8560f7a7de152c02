"""Attention, feed-forward and timestep-embedding primitives shared by every Hallo network.

Parameter names (`to_q`, `to_out.0`, `ff.net.0.proj`, ...) are the diffusers names the
released `net.pth` uses. The softmax attention itself is a kernel each `Attention` holds
(PyTorch's `scaled_dot_product_attention` unless `use_attention_kernel` sets another, see
`hallo_pipeline.attention_backends`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...attention_backends import AttentionKernel, sdpa


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections and a biased output projection."""

    kernel: AttentionKernel

    def __init__(self, query_dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"query_dim {query_dim} is not divisible by heads={heads}")
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        # A ModuleList so the key is `to_out.0` (diffusers keeps a dropout at index 1).
        self.to_out = nn.ModuleList([nn.Linear(query_dim, query_dim)])
        self.kernel = sdpa

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention over already-projected (N, L, C) queries/keys/values, then `to_out`."""
        out = self.kernel(self._split(q), self._split(k), self._split(v))
        n, _, length, _ = out.shape
        return self.to_out[0](out.transpose(1, 2).reshape(n, length, -1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        return self.attend(self.to_q(x), self.to_k(context), self.to_v(context))


def use_attention_kernel(module: nn.Module, kernel: AttentionKernel) -> None:
    """Every `Attention` inside `module` (spatial, reference, temporal, audio) computes with `kernel`."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.kernel = kernel


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


# The GEGLU projection is the largest activation of the denoiser: 8 x dim values per token, 0.7 GiB
# for one fp16 motion-module call at 512x512 (36 rows of 4096 tokens). Tokens are independent, so
# running them in slices of this many projected values gives the same numbers in a fraction of
# the memory (benchmarks/memory_estimate.py); the slices stay large enough to keep a GPU busy.
FEEDFORWARD_CHUNK_ELEMENTS = 2**26


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width; `net.1` is a parameter-free dropout slot.

    `chunk_elements` caps the projected values computed at once (None: no cap).
    """

    def __init__(self, dim: int, mult: int = 4, chunk_elements: int | None = FEEDFORWARD_CHUNK_ELEMENTS):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim)])
        self.chunk_elements = chunk_elements

    def _feed(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.net[0].proj.out_features
        rows = x.shape[:-1].numel()
        if self.chunk_elements is None or rows * projected <= self.chunk_elements:
            return self._feed(x)
        flat = x.reshape(rows, x.shape[-1])
        out = flat.new_empty(rows, self.net[2].out_features)
        step = max(1, self.chunk_elements // projected)
        for start in range(0, rows, step):
            out[start : start + step] = self._feed(flat[start : start + step])
        return out.view(*x.shape[:-1], out.shape[-1])


def timestep_embedding(
    timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0,
    max_period: float = 10000.0,
) -> torch.Tensor:
    """Sinusoidal embedding of (N,) timesteps -> (N, dim) float32 (DDPM / SD convention)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(exponent / (half - freq_shift))
    args = timesteps.float()[:, None] * freqs[None, :]
    sin, cos = torch.sin(args), torch.cos(args)
    emb = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))
