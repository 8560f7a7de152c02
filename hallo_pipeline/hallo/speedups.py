"""Optional speed-ups that leave the numbers within parity tolerance (tested in tests/parity)."""

from __future__ import annotations

import torch

from ..attention_backends import select_kernel
from .models import HalloNet
from .models.attention import AttentionKernel, use_attention_kernel


def apply_speedups(
    net: HalloNet,
    channels_last: bool = False,
    compile: bool = False,
    attention: str | AttentionKernel = "auto",
    device: torch.device | None = None,
) -> HalloNet:
    """channels_last: NHWC convolutions (faster with cuDNN on recent GPUs, usually slower on CPU).
    compile: `torch.compile` the denoising UNet in place (keys unchanged, so loading and
    ComfyUI's model management see the same module); the first step pays the compile time.
    attention: the kernel of every attention layer of both UNets, a name from
    `config.ATTENTION_OPTIONS` (checked against `device`, by default where the weights
    are now, and the weights' dtype) or a kernel callable used as is."""
    weight = next(net.parameters())
    use_attention_kernel(net, select_kernel(attention, device or weight.device, weight.dtype))
    if channels_last:
        net.denoising_unet.to(memory_format=torch.channels_last)
        net.reference_unet.to(memory_format=torch.channels_last)
    if compile:
        net.denoising_unet.compile(dynamic=False)
    return net
