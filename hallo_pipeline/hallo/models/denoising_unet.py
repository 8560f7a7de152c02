"""The denoising UNet: SD-1.5 layout applied frame-wise, plus audio and motion modules.

Forward semantics are those the released weights were trained and run with (SPEC §5-§6);
the release ran this network in training mode with gradient checkpointing, which selects
the branch reproduced here on purpose:

* per CrossAttn layer (and in the mid block): resnet -> spatial transformer with reference
  attention -> audio module -> motion module over [motion frames ; clip frames], cut back to
  the clip frames (`_motion_over_context`);
* the motion modules of the plain blocks (`down_blocks.3`, `up_blocks.0` at SD sizes) are in
  the file but are never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...config import RegionWeights
from ..config import AudioModuleConfig, MotionModuleConfig, UNetConfig
from .attention import TimestepEmbedding, timestep_embedding
from .audio_module import RegionMasks
from .motion_module import MotionModule
from .spatial_transformer import ReferenceTokens
from .unet_blocks import build_blocks


@dataclass
class ReferenceLayer:
    """What the ReferenceNet hands one transformer layer of the denoiser."""

    tokens: ReferenceTokens  # reference-image tokens for the conditional half's spatial attention
    motion: torch.Tensor  # (B, n_motion, h*w, C): motion-frame tokens of each CFG half, in time order


def _motion_over_context(module: MotionModule, x: torch.Tensor, motion: torch.Tensor, frames: int) -> torch.Tensor:
    """Run a motion module on [motion frames ; clip frames] and keep the clip frames."""
    bf, c, h, w = x.shape
    b, m = bf // frames, motion.shape[1]
    context = motion.to(x.dtype).reshape(b, m, h, w, c).permute(0, 1, 4, 2, 3)
    seq = torch.cat([context, x.reshape(b, frames, c, h, w)], dim=1).reshape(b * (m + frames), c, h, w)
    out = module(seq, m + frames).reshape(b, m + frames, c, h, w)[:, m:]
    return out.reshape(bf, c, h, w)


class DenoisingUNet(nn.Module):
    def __init__(self, config: UNetConfig, audio: AudioModuleConfig, motion: MotionModuleConfig):
        super().__init__()
        self.config = config
        ch = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], config.time_embed_dim)
        self.down_blocks, self.mid_block, self.up_blocks = build_blocks(config, audio=audio, motion=motion)
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, ch[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], config.out_channels, 3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        context: torch.Tensor,
        audio_tokens: torch.Tensor,
        masks: Sequence[RegionMasks],
        weights: RegionWeights,
        reference: Sequence[ReferenceLayer],
        face_features: torch.Tensor | None = None,
        between_blocks: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Predict v for a batch of clips.

        sample: (B, C, F, h, w) latents; timestep: scalar; context: (B, tokens, D) face tokens;
        audio_tokens: (B, F, tokens, D_audio); masks: one `RegionMasks` per resolution level
        (level 0 = h x w); reference: one `ReferenceLayer` per spatial transformer, in block
        order; face_features: (B, C0, h, w) FaceLocator output added after `conv_in`, or None;
        between_blocks: called after every down, mid and up block (a Cancel check can raise
        there, so a cancelled run stops within a step, not after it). Returns (B, C_out, F, h, w).
        """
        b, c, f, h, w = sample.shape
        dtype = self.conv_in.weight.dtype
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1)[:1]
        temb = self.time_embedding(
            timestep_embedding(t, self.config.block_out_channels[0], self.config.flip_sin_to_cos,
                               self.config.freq_shift).to(dtype)
        ).expand(b * f, -1)
        context_rows = context.to(dtype).repeat_interleave(f, dim=0)
        audio_rows = audio_tokens.to(dtype).reshape(b * f, *audio_tokens.shape[2:])
        layers: Iterator[ReferenceLayer] = iter(reference)
        checkpoint = between_blocks or (lambda: None)

        def attention_layer(block: nn.Module, i: int, x: torch.Tensor, level: int) -> torch.Tensor:
            ref = next(layers)
            x = block.attentions[i](x, context_rows, reference=ref.tokens)
            x = block.audio_modules[i](x, audio_rows, masks[level], weights)
            return _motion_over_context(block.motion_modules[i], x, ref.motion, f)

        x = self.conv_in(sample.to(dtype).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        if face_features is not None:
            x = x + face_features.to(dtype).repeat_interleave(f, dim=0)
        skips = [x]
        for level, block in enumerate(self.down_blocks):
            for i, resnet in enumerate(block.resnets):
                x = resnet(x, temb)
                if block.has_attention:
                    x = attention_layer(block, i, x, level)
                # else: a plain block; its motion module is not run (release quirk, see module doc)
                skips.append(x)
            if block.downsamplers is not None:
                x = block.downsamplers[0](x)
                skips.append(x)
            checkpoint()

        mid = self.mid_block
        x = mid.resnets[0](x, temb)
        x = attention_layer(mid, 0, x, len(self.down_blocks) - 1)
        x = mid.resnets[1](x, temb)
        checkpoint()

        for depth, block in enumerate(self.up_blocks):
            level = len(self.up_blocks) - 1 - depth
            for i, resnet in enumerate(block.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
                if block.has_attention:
                    x = attention_layer(block, i, x, level)
            if block.upsamplers is not None:
                x = block.upsamplers[0](x, skips[-1].shape[-2:])
            checkpoint()

        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4)
