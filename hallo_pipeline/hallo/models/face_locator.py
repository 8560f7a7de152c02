"""FaceLocator: a small conv net that turns the face-region image into a latent-sized feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FaceLocatorConfig


class FaceLocator(nn.Module):
    """3 -> c0, then per level (c, c) and (c, c_next, stride 2), then -> embedding channels.

    SiLU follows every conv but the last; the output is at 1/2^(levels-1) of the input size
    (1/8 for the released sizes), i.e. latent resolution.
    """

    def __init__(self, config: FaceLocatorConfig):
        super().__init__()
        ch = config.block_out_channels
        self.conv_in = nn.Conv2d(config.conditioning_channels, ch[0], 3, padding=1)
        blocks = []
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(ch[-1], config.embedding_channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (N, 3, H, W) face-region image in [0, 1] -> (N, C, H/8, W/8)."""
        x = F.silu(self.conv_in(image))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)
