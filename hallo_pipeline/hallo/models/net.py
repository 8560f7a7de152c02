"""The composite network whose state dict is the released `net.pth`."""

from __future__ import annotations

from torch import nn

from ..config import NetConfig
from .denoising_unet import DenoisingUNet
from .face_locator import FaceLocator
from .projections import AudioProj, ImageProj
from .reference_unet import ReferenceUNet


class HalloNet(nn.Module):
    """Holds the five trained parts under the key prefixes of `net.pth`."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.reference_unet = ReferenceUNet(config.unet)
        self.denoising_unet = DenoisingUNet(config.unet, config.audio, config.motion)
        self.face_locator = FaceLocator(config.face_locator)
        self.imageproj = ImageProj(config.imageproj)
        self.audioproj = AudioProj(config.audioproj)
