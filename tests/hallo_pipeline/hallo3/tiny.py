"""A tiny Hallo3 configuration and randomly filled networks for unit tests (no fixture files needed)."""

from __future__ import annotations

import torch

from hallo_pipeline.hallo3.config import Hallo3Config
from hallo_pipeline.hallo3.model import Hallo3Networks, build_hallo3

TINY = Hallo3Config.from_dict(
    {
        "dit": {
            "num_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "time_embed_dim": 16,
            "text_length": 5, "text_hidden_size": 8, "latent_height": 4, "latent_width": 6,
            "num_frames": 9, "face_cross_attn_hidden_size": 12, "cross_attn_hidden_size": 10,
        },
        "face_proj": {"hidden_size": 12, "clip_embeddings_dim": 20, "clip_extra_context_tokens": 3},
        "audio_proj": {
            "seq_len": 3, "blocks": 2, "channels": 4, "intermediate_dim": 8, "output_dim": 10, "context_tokens": 2,
        },
        "image_size": [32, 48],
        "sampling_num_frames": 3,
    }
)


def random_networks(config: Hallo3Config = TINY, seed: int = 0) -> Hallo3Networks:
    """Every parameter drawn from N(0, 0.3^2) (norm weights around 1), so no path is an identity or zero."""
    nets = build_hallo3(config)
    generator = torch.Generator().manual_seed(seed)
    for name, p in nets.named_parameters():
        noise = torch.randn(p.shape, generator=generator) * 0.3
        p.copy_(1 + noise if "norm" in name and name.endswith("weight") else noise)
    return nets
