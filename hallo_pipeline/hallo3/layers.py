"""One transformer layer of the Hallo3 DiT and its attentions (SPEC §4.4-4.5).

Module and parameter names are the checkpoint's (`transformer.layers.{i}.*`). The per-head q/k LayerNorms
and the AdaLN projection of a layer live elsewhere in the checkpoint (`mixins.adaln_layer.*`), so the DiT
hands them to each layer call as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..fp8 import linear_weight
from .rope import apply_rope

# (cos, sin) rows for the tokens they rotate, float32.
Rope = tuple[torch.Tensor, torch.Tensor]
# Keys (after the key LayerNorm) and values of the reference bank rows, (1 or b, heads, R, head_dim).
ReferenceKV = tuple[torch.Tensor, torch.Tensor]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


@dataclass(frozen=True)
class Modulation:
    """The 12 AdaLN chunks of one layer, each (b, 1, D), in the checkpoint's order (SPEC §4.4)."""

    shift_msa: torch.Tensor
    scale_msa: torch.Tensor
    gate_msa: torch.Tensor
    shift_mlp: torch.Tensor
    scale_mlp: torch.Tensor
    gate_mlp: torch.Tensor
    text_shift_msa: torch.Tensor
    text_scale_msa: torch.Tensor
    text_gate_msa: torch.Tensor
    text_shift_mlp: torch.Tensor
    text_scale_mlp: torch.Tensor
    text_gate_mlp: torch.Tensor

    @classmethod
    def from_projection(cls, projected: torch.Tensor) -> "Modulation":
        """(b, 12 D) -> the 12 chunks, broadcast over tokens."""
        return cls(*(c.unsqueeze(1) for c in projected.chunk(12, dim=-1)))


@dataclass(frozen=True)
class HeadNorms:
    """A layer's per-head LayerNorms of q and k; the cross-attentions reuse them (QUIRK, SPEC §4.5)."""

    query: nn.LayerNorm
    key: nn.LayerNorm


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(n, tokens, heads * hd) -> (n, heads, tokens, hd)."""
    n, tokens, _ = x.shape
    return x.view(n, tokens, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, heads, tokens, hd = x.shape
    return x.transpose(1, 2).reshape(n, tokens, heads * hd)


class SelfAttention(nn.Module):
    """Attention over [text ; video ; reference bank] keys, queried by the text and video rows."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query_key_value = nn.Linear(hidden, 3 * hidden)  # rows: q | k | v
        self.dense = nn.Linear(hidden, hidden)

    def reference_kv(self, bank: torch.Tensor, norms: HeadNorms) -> ReferenceKV:
        """K/V of the bank rows (b, R, D): this layer's projection and key LayerNorm, no RoPE. They depend on
        nothing else, so they are computed once per video; their query rows are never needed (SPEC §4.7)."""
        d = self.dense.in_features
        w, b = linear_weight(self.query_key_value, bank.dtype), self.query_key_value.bias
        k = split_heads(F.linear(bank, w[d : 2 * d], b[d : 2 * d]), self.heads)
        v = split_heads(F.linear(bank, w[2 * d :], b[2 * d :]), self.heads)
        return norms.key(k), v

    def forward(
        self,
        text: torch.Tensor,
        video: torch.Tensor,
        norms: HeadNorms,
        rope: Rope,
        reference: ReferenceKV | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_text = text.shape[1]
        qkv = self.query_key_value(torch.cat([text, video], dim=1))
        q, k, v = (split_heads(x, self.heads) for x in qkv.chunk(3, dim=-1))
        q, k = norms.query(q), norms.key(k)
        # RoPE on the video rows only; text rows keep their (learned) positions.
        q = torch.cat([q[:, :, :n_text], apply_rope(q[:, :, n_text:], *rope)], dim=2)
        k = torch.cat([k[:, :, :n_text], apply_rope(k[:, :, n_text:], *rope)], dim=2)
        if reference is not None:
            ref_k, ref_v = (r.expand(q.shape[0], -1, -1, -1) for r in reference)
            k, v = torch.cat([k, ref_k], dim=2), torch.cat([v, ref_v], dim=2)
        out = self.dense(merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return out[:, :n_text], out[:, n_text:]


class CrossAttention(nn.Module):
    """Per-latent-frame attention from the video rows to a few condition tokens (face or audio)."""

    def __init__(self, hidden: int, heads: int, context_dim: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key_value = nn.Linear(context_dim, 2 * hidden)  # rows: k | v
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, norms: HeadNorms, frame_rope: Rope) -> torch.Tensor:
        """x (b*T, R, D) normalised video rows of each latent frame; tokens (b*T, n, context_dim)."""
        q = norms.query(split_heads(self.query(x), self.heads))
        # QUIRK (SPEC §4.5): every frame's queries get the frame-0 positions; keys get no RoPE.
        q = apply_rope(q, *frame_rope)
        k, v = (split_heads(t, self.heads) for t in self.key_value(tokens).chunk(2, dim=-1))
        return self.dense(merge_heads(F.scaled_dot_product_attention(q, norms.key(k), v)))


class MLP(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(hidden, inner)
        self.dense_4h_to_h = nn.Linear(inner, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x), approximate="tanh"))


@dataclass(frozen=True)
class FrameConditions:
    """What the main DiT's cross-attentions read, one row per (sample, latent frame), sample-major."""

    face_tokens: torch.Tensor  # (b*T, n_face, face width)
    audio_tokens: torch.Tensor  # (b*T, n_audio, audio width)
    frame_rope: Rope  # the frame-0 table rows, (R, head_dim)


class DiTLayer(nn.Module):
    """Self-attention (+ reference bank), [face and audio cross-attention], MLP, with text/video AdaLN."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        mlp_hidden: int,
        face_dim: int | None = None,
        audio_dim: int | None = None,
    ):
        super().__init__()
        # Registration order = the checkpoint's key order.
        self.input_layernorm = nn.LayerNorm(hidden, eps=1e-5)
        self.attention = SelfAttention(hidden, heads)
        self.post_attention_layernorm = nn.LayerNorm(hidden, eps=1e-5)
        self.has_cross_attention = face_dim is not None
        if self.has_cross_attention:
            self.face_input_layernorm = nn.LayerNorm(hidden, eps=1e-5)
            self.face_attn = CrossAttention(hidden, heads, face_dim)
            self.audio_input_layernorm = nn.LayerNorm(hidden, eps=1e-5)
            self.audio_attn = CrossAttention(hidden, heads, audio_dim)
        self.mlp = MLP(hidden, mlp_hidden)

    def normalised_video(self, video: torch.Tensor, mod: Modulation) -> torch.Tensor:
        """The modulated, normalised video rows that enter the self-attention: in the reference DiT, the bank."""
        return modulate(self.input_layernorm(video), mod.shift_msa, mod.scale_msa)

    def forward(
        self,
        text: torch.Tensor,
        video: torch.Tensor,
        mod: Modulation,
        norms: HeadNorms,
        rope: Rope,
        reference: ReferenceKV | None = None,
        conditions: FrameConditions | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (text, video, the normalised video rows of this layer's self-attention input)."""
        n_video = self.normalised_video(video, mod)
        n_text = modulate(self.input_layernorm(text), mod.text_shift_msa, mod.text_scale_msa)
        out_text, out_video = self.attention(n_text, n_video, norms, rope, reference)
        video = video + mod.gate_msa * out_video
        text = text + mod.text_gate_msa * out_text

        if conditions is not None:
            b, tokens, d = video.shape
            per_frame = conditions.frame_rope[0].shape[0]
            # No modulation and no gate on either cross-attention; plain residuals.
            face_in = self.face_input_layernorm(video).reshape(-1, per_frame, d)
            face = self.face_attn(face_in, conditions.face_tokens, norms, conditions.frame_rope)
            video = video + face.reshape(b, tokens, d)
            audio_in = self.audio_input_layernorm(video).reshape(-1, per_frame, d)
            audio = self.audio_attn(audio_in, conditions.audio_tokens, norms, conditions.frame_rope)
            video = video + audio.reshape(b, tokens, d)

        # Video before text: a forward pre-hook on post_attention_layernorm sees the video rows first.
        m_video = modulate(self.post_attention_layernorm(video), mod.shift_mlp, mod.scale_mlp)
        m_text = modulate(self.post_attention_layernorm(text), mod.text_shift_mlp, mod.text_scale_mlp)
        video = video + mod.gate_mlp * self.mlp(m_video)
        text = text + mod.text_gate_mlp * self.mlp(m_text)
        return text, video, n_video
