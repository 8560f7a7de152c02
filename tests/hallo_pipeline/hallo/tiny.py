"""Tiny configurations of the real architecture for unit tests (no fixture files needed)."""

from __future__ import annotations

import torch

from hallo_pipeline.hallo.config import (
    AudioModuleConfig,
    AudioProjConfig,
    FaceLocatorConfig,
    ImageProjConfig,
    MotionModuleConfig,
    NetConfig,
    UNetConfig,
)


def tiny_config() -> NetConfig:
    """Other numbers than the parity fixture's (first two widths differ, one layer per block)."""
    return NetConfig(
        unet=UNetConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=1, attention_heads=4,
                        cross_attention_dim=24, norm_num_groups=8),
        motion=MotionModuleConfig(heads=4, max_frames=24),
        audio=AudioModuleConfig(audio_dim=16, heads=4),
        face_locator=FaceLocatorConfig(block_out_channels=(4, 8, 16, 16), embedding_channels=32),
        imageproj=ImageProjConfig(embedding_dim=512, tokens=4, cross_attention_dim=24),
        audioproj=AudioProjConfig(window=5, layers=12, channels=8, intermediate_dim=32, output_dim=16, tokens=4),
    )


def random_net(config: NetConfig | None = None, seed: int = 0):
    """A HalloNet with every parameter random (also the ones the release zero-initialises)."""
    from hallo_pipeline.hallo.models import HalloNet
    from hallo_pipeline.hallo.tiny_models import random_init

    return random_init(HalloNet(config or tiny_config()), seed).eval().requires_grad_(False)


def tiny_vae(seed: int = 0):
    """A random diffusers AutoencoderKL with the real block structure (8x down), small widths."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, sample_size=64,
    )
    return vae.eval().requires_grad_(False)
