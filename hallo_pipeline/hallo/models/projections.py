"""Projections of the identity embedding and the audio features into attention tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AudioProjConfig, ImageProjConfig


class ImageProj(nn.Module):
    """Raw 512-d ArcFace embedding -> `tokens` face tokens of the UNets' cross-attention width."""

    def __init__(self, config: ImageProjConfig):
        super().__init__()
        self.tokens = config.tokens
        self.proj = nn.Linear(config.embedding_dim, config.tokens * config.cross_attention_dim)
        self.norm = nn.LayerNorm(config.cross_attention_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, 512) -> (B, tokens, cross_attention_dim)."""
        return self.norm(self.proj(embedding).reshape(embedding.shape[0], self.tokens, -1))


class AudioProj(nn.Module):
    """Windowed wav2vec2 features of a frame (window x layers x channels) -> `tokens` audio tokens."""

    def __init__(self, config: AudioProjConfig):
        super().__init__()
        self.tokens = config.tokens
        self.proj1 = nn.Linear(config.input_dim, config.intermediate_dim)
        self.proj2 = nn.Linear(config.intermediate_dim, config.intermediate_dim)
        self.proj3 = nn.Linear(config.intermediate_dim, config.tokens * config.output_dim)
        self.norm = nn.LayerNorm(config.output_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, window, layers, channels) -> (B, F, tokens, output_dim)."""
        b, f = features.shape[:2]
        x = features.reshape(b * f, -1)
        x = F.relu(self.proj1(x))
        x = F.relu(self.proj2(x))
        x = self.proj3(x).reshape(b * f, self.tokens, -1)
        return self.norm(x).reshape(b, f, self.tokens, -1)
