"""Down, mid and up blocks of the SD-1.5 UNet layout, with optional audio and motion modules.

The blocks only *hold* their layers (named as in `net.pth`); the two UNets drive them, so
the order of operations and the release's quirks are visible in one place each
(`reference_unet.py`, `denoising_unet.py`).
"""

from __future__ import annotations

from torch import nn

from ..config import AudioModuleConfig, MotionModuleConfig, UNetConfig
from .audio_module import AudioModule
from .motion_module import MotionModule
from .resnet import Downsample, ResnetBlock, Upsample
from .spatial_transformer import SpatialTransformer


class _Block(nn.Module):
    """Common constructor for the per-layer attention / audio / motion lists."""

    def _add_layer_modules(
        self,
        channels: int,
        audio_inner: list[int],
        unet: UNetConfig,
        has_attention: bool,
        audio: AudioModuleConfig | None,
        motion: MotionModuleConfig | None,
    ) -> None:
        layers = len(audio_inner)
        if has_attention:
            self.attentions = nn.ModuleList(
                SpatialTransformer(channels, unet.attention_heads, unet.cross_attention_dim, unet.norm_num_groups)
                for _ in range(layers)
            )
            if audio is not None:
                self.audio_modules = nn.ModuleList(
                    AudioModule(channels, inner, audio.heads, audio.audio_dim, unet.norm_num_groups)
                    for inner in audio_inner
                )
        if motion is not None:
            self.motion_modules = nn.ModuleList(
                MotionModule(channels, motion.heads, motion.max_frames, motion.num_attention_blocks,
                             motion.norm_num_groups)
                for _ in range(layers)
            )
        self.has_attention = has_attention


class DownBlock(_Block):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        unet: UNetConfig,
        has_attention: bool,
        add_downsample: bool,
        audio: AudioModuleConfig | None = None,
        motion: MotionModuleConfig | None = None,
    ):
        super().__init__()
        n = unet.layers_per_block
        layer_in = [in_channels] + [out_channels] * (n - 1)
        self.resnets = nn.ModuleList(
            ResnetBlock(c, out_channels, unet.time_embed_dim, unet.norm_num_groups, unet.norm_eps) for c in layer_in
        )
        # Audio-module width quirk, down blocks: the layer's *input* channel count.
        self._add_layer_modules(out_channels, layer_in, unet, has_attention, audio, motion)
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if add_downsample else None


class MidBlock(_Block):
    def __init__(
        self,
        channels: int,
        unet: UNetConfig,
        audio: AudioModuleConfig | None = None,
        motion: MotionModuleConfig | None = None,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(channels, channels, unet.time_embed_dim, unet.norm_num_groups, unet.norm_eps)
            for _ in range(2)
        )
        self._add_layer_modules(channels, [channels], unet, True, audio, motion)


class UpBlock(_Block):
    def __init__(
        self,
        in_channels: int,
        prev_channels: int,
        out_channels: int,
        unet: UNetConfig,
        has_attention: bool,
        add_upsample: bool,
        audio: AudioModuleConfig | None = None,
        motion: MotionModuleConfig | None = None,
    ):
        super().__init__()
        n = unet.layers_per_block + 1
        resnets = []
        for j in range(n):
            skip = in_channels if j == n - 1 else out_channels
            base = prev_channels if j == 0 else out_channels
            resnets.append(
                ResnetBlock(base + skip, out_channels, unet.time_embed_dim, unet.norm_num_groups, unet.norm_eps)
            )
        self.resnets = nn.ModuleList(resnets)
        # Audio-module width quirk, up blocks: the block's `in_channels` for every layer.
        self._add_layer_modules(out_channels, [in_channels] * n, unet, has_attention, audio, motion)
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_upsample else None


def build_blocks(
    unet: UNetConfig, audio: AudioModuleConfig | None = None, motion: MotionModuleConfig | None = None
) -> tuple[nn.ModuleList, MidBlock, nn.ModuleList]:
    """The down blocks, mid block and up blocks of one UNet (SD-1.5 channel bookkeeping)."""
    ch = unet.block_out_channels
    n = len(ch)
    down = nn.ModuleList()
    for i in range(n):
        down.append(
            DownBlock(
                ch[max(i - 1, 0)], ch[i], unet, unet.down_block_has_attention[i], add_downsample=i < n - 1,
                audio=audio, motion=motion,
            )
        )
    mid = MidBlock(ch[-1], unet, audio=audio, motion=motion)
    rev = list(reversed(ch))
    up = nn.ModuleList()
    for i in range(n):
        up.append(
            UpBlock(
                in_channels=rev[min(i + 1, n - 1)], prev_channels=rev[max(i - 1, 0)], out_channels=rev[i], unet=unet,
                has_attention=unet.up_block_has_attention[i], add_upsample=i < n - 1, audio=audio, motion=motion,
            )
        )
    return down, mid, up
