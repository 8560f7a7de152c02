"""ReferenceNet: the SD-1.5 2D UNet without output head, run to record spatial features.

Its only product is, for every spatial transformer block in block order, the block's
`norm1` output (the tokens the denoiser's blocks attend to, SPEC §5).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import UNetConfig
from .attention import TimestepEmbedding, timestep_embedding
from .unet_blocks import build_blocks


class ReferenceUNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], config.time_embed_dim)
        self.down_blocks, self.mid_block, self.up_blocks = build_blocks(config)

    def transformer_block_names(self) -> list[str]:
        """Paths of the spatial transformer blocks, in the order `forward` records them."""
        names = []
        for prefix, blocks in (("down_blocks", self.down_blocks), ("mid_block", None), ("up_blocks", self.up_blocks)):
            if blocks is None:
                names.append("mid_block.attentions.0.transformer_blocks.0")
                continue
            for i, block in enumerate(blocks):
                if block.has_attention:
                    names += [f"{prefix}.{i}.attentions.{j}.transformer_blocks.0" for j in range(len(block.attentions))]
        return names

    @torch.no_grad()
    def forward(self, latents: torch.Tensor, context: torch.Tensor, timestep: int = 0) -> list[torch.Tensor]:
        """latents (N, 4, h, w), context (N, tokens, D) -> one (N, h_i*w_i, C_i) tensor per transformer block.

        Stops as soon as the last block has recorded: nothing after it is ever read.
        """
        record: list[torch.Tensor] = []
        total = len(self.transformer_block_names())
        t = torch.full((latents.shape[0],), timestep, device=latents.device)
        temb = self.time_embedding(
            timestep_embedding(t, self.config.block_out_channels[0], self.config.flip_sin_to_cos,
                               self.config.freq_shift).to(latents.dtype)
        )
        h = self.conv_in(latents)
        skips = [h]
        for block in self.down_blocks:
            for i, resnet in enumerate(block.resnets):
                h = resnet(h, temb)
                if block.has_attention:
                    h = block.attentions[i](h, context, record=record)
                skips.append(h)
            if block.downsamplers is not None:
                h = block.downsamplers[0](h)
                skips.append(h)
        mid = self.mid_block
        h = mid.resnets[0](h, temb)
        h = mid.attentions[0](h, context, record=record)
        h = mid.resnets[1](h, temb)
        for block in self.up_blocks:
            for i, resnet in enumerate(block.resnets):
                h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
                if block.has_attention:
                    h = block.attentions[i](h, context, record=record)
                    if len(record) == total:
                        return record
            if block.upsamplers is not None:
                h = block.upsamplers[0](h, skips[-1].shape[-2:])
        return record
