"""Native PyTorch re-implementation of the Hallo networks (key-compatible with `net.pth`)."""

from .audio_module import RegionMasks
from .denoising_unet import DenoisingUNet, ReferenceLayer
from .net import HalloNet
from .reference_unet import ReferenceUNet
from .spatial_transformer import ReferenceTokens

__all__ = ["DenoisingUNet", "HalloNet", "ReferenceLayer", "ReferenceTokens", "ReferenceUNet", "RegionMasks"]
