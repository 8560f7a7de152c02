"""Identity and audio tokens for the main DiT's cross-attentions (SPEC §5).

Parameter names are the checkpoint's (`transformer.face_proj.*`, `transformer.audio_proj.*`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .config import AudioProjConfig, FaceProjConfig


class FaceProj(nn.Module):
    """(b, 512) raw face embedding -> (b, tokens, hidden_size) identity tokens."""

    def __init__(self, config: FaceProjConfig):
        super().__init__()
        self.tokens = config.clip_extra_context_tokens
        self.proj = nn.Linear(config.clip_embeddings_dim, config.clip_extra_context_tokens * config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        if embedding.ndim != 2 or embedding.shape[1] != self.proj.in_features:
            raise InputError(
                f"face embedding has shape {tuple(embedding.shape)}; expected (batch, {self.proj.in_features}), "
                "the raw insightface embedding of the portrait",
                "face_embedding",
            )
        return self.norm(self.proj(embedding).reshape(embedding.shape[0], self.tokens, -1))


class AudioProj(nn.Module):
    """(b, frames, window, layers, channels) wav2vec2 windows -> (b, latent frames, tokens, output_dim).

    One MLP per video frame, then the frame axis shrinks twice through the *same* Conv1d (k = 2, s = 2)
    with frame 0 kept unconvolved each time (49 -> 25 -> 13 for the release: QUIRK, reproduced on purpose),
    so latent frame 0 hears exactly video frame 0 like the causal VAE sees it.
    """

    def __init__(self, config: AudioProjConfig):
        super().__init__()
        self.config = config
        width = config.context_tokens * config.output_dim
        self.proj1 = nn.Linear(config.input_dim, config.intermediate_dim)
        self.proj2 = nn.Linear(config.intermediate_dim, config.intermediate_dim)
        self.proj3 = nn.Linear(config.intermediate_dim, width)
        self.norm = nn.LayerNorm(config.output_dim)
        self.conv1 = nn.Conv1d(width, width, kernel_size=2, stride=2)

    def _shrink_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(b, width, n) -> (b, width, 1 + (n - 1) // 2) for odd n, (b, width, n // 2) for even n."""
        if x.shape[-1] % 2 == 0:
            return self.conv1(x)
        return torch.cat([x[..., :1], self.conv1(x[..., 1:])], dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        c = self.config
        expected = (c.seq_len, c.blocks, c.channels)
        if features.ndim != 5 or tuple(features.shape[2:]) != expected:
            raise InputError(
                f"audio features have shape {tuple(features.shape)}; expected (batch, frames, {c.seq_len}, "
                f"{c.blocks}, {c.channels}): wav2vec2's {c.blocks} layer outputs in windows of {c.seq_len} frames",
                "audio",
            )
        b, frames = features.shape[:2]
        x = F.relu(self.proj1(features.reshape(b * frames, -1)))
        x = F.relu(self.proj2(x))
        x = self.proj3(x)  # (b * frames, tokens * output_dim)
        x = x.reshape(b, frames, -1).transpose(1, 2)
        x = self._shrink_frames(self._shrink_frames(x))
        x = x.transpose(1, 2).reshape(b, x.shape[-1], c.context_tokens, c.output_dim)
        return self.norm(x)
