"""fp8 weight storage for the Hallo / Hallo2 networks (`--fp8`, the loader's weight_dtype fp8_e4m3fn).

    store_fp8(net)      # both UNets' (and so the motion and audio modules') Linear and Conv2d weights in e4m3

Convolutions are included because they are half of the UNets' bytes: of the two UNets' 2.39 G parameters at full
size, the converted convolutions (3x3 and 1x1) hold 1.21 G, the converted Linears 1.17 G; with both, `net.pth`'s
weights take 2.47 GB instead of 4.85 in fp16, with Linears alone 3.68 (benchmarks/results/hallo-fp8-drift-cpu.md).
"""

from __future__ import annotations

from torch import nn

from .. import fp8
from .models import HalloNet

KINDS = (nn.Linear, nn.Conv2d)


def fp8_targets(net: HalloNet, kinds: tuple[type[nn.Module], ...] = KINDS) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) of every layer `store_fp8` converts: each Linear and Conv2d of the ReferenceNet
    and of the denoising UNet (attention, audio and motion modules, resnets, samplers). Left in the working dtype:
    both UNets' `conv_in` (the sampler reads the compute dtype from it), the denoising UNet's `conv_out` and both
    time-embedding MLPs: small, at the ends of the network, where nothing averages their rounding out; and the
    FaceLocator and the face/audio projections (2 % of the bytes)."""
    unets = (net.reference_unet, net.denoising_unet)
    ends = [m for unet in unets for m in (unet.conv_in, *unet.time_embedding.modules())]
    ends.append(net.denoising_unet.conv_out)
    return [target for unet in unets for target in fp8.layers_of(unet, kinds, skip=ends)]


def store_fp8(net: HalloNet, kinds: tuple[type[nn.Module], ...] = KINDS) -> HalloNet:
    """Convert `fp8_targets` in place, where they lie (call after loading the weights, before compiling)."""
    fp8.store_fp8(fp8_targets(net, kinds))
    return net
