"""Optional speed-ups that leave the numbers within parity tolerance (tested in tests/parity)."""

from __future__ import annotations

import torch

from .models import HalloNet


def apply_speedups(net: HalloNet, channels_last: bool = False, compile: bool = False) -> HalloNet:
    """channels_last: NHWC convolutions (faster with cuDNN on recent GPUs, usually slower on CPU).
    compile: `torch.compile` the denoising UNet in place (keys unchanged, so loading and
    ComfyUI's model management see the same module); the first step pays the compile time."""
    if channels_last:
        net.denoising_unet.to(memory_format=torch.channels_last)
        net.reference_unet.to(memory_format=torch.channels_last)
    if compile:
        net.denoising_unet.compile(dynamic=False)
    return net
