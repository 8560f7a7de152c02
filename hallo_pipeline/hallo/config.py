"""Sizes of the Hallo networks, as frozen dataclasses (the settings of a run are in `hallo_pipeline/config.py`).

The defaults are the released model (Stable Diffusion 1.5 sizes, `SPEC.md` §3); the tiny
test models are the same classes with other numbers. `NetConfig.from_dict` reads the JSON
format of the parity fixtures' `tiny_config.json` (diffusers / Hallo field names), which is
also what `make-tiny-models` writes next to a tiny `net.pth`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class UNetConfig:
    """Spatial layout shared by the reference UNet and the denoising UNet."""

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    # True where a down block is a CrossAttn block; up blocks mirror it (SD-1.5: 3 x CrossAttn + plain).
    down_block_has_attention: tuple[bool, ...] = (True, True, True, False)
    # The diffusers field `attention_head_dim` of SD-1.5 is, by legacy, the number of heads.
    attention_heads: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def up_block_has_attention(self) -> tuple[bool, ...]:
        return tuple(reversed(self.down_block_has_attention))

    def __post_init__(self) -> None:
        if len(self.block_out_channels) != len(self.down_block_has_attention):
            raise ValueError("block_out_channels and down_block_has_attention must have the same length")
        for ch in self.block_out_channels:
            if ch % self.norm_num_groups:
                raise ValueError(f"channel count {ch} is not divisible by norm_num_groups={self.norm_num_groups}")


@dataclass(frozen=True)
class MotionModuleConfig:
    """AnimateDiff-v2 temporal transformer (one block of two temporal self-attentions)."""

    heads: int = 8
    max_frames: int = 32  # length of the stored sinusoidal position table `pe`
    num_attention_blocks: int = 2
    # TemporalTransformer3DModel hard-codes 32 groups, whatever the UNet uses.
    norm_num_groups: int = 32


@dataclass(frozen=True)
class AudioModuleConfig:
    """The hierarchical audio cross-attention modules (SPEC §4)."""

    audio_dim: int = 768  # width of the audio tokens (`audio_attention_dim`)
    heads: int = 8


@dataclass(frozen=True)
class FaceLocatorConfig:
    conditioning_channels: int = 3
    block_out_channels: tuple[int, ...] = (16, 32, 64, 128)
    embedding_channels: int = 320


@dataclass(frozen=True)
class ImageProjConfig:
    embedding_dim: int = 512  # ArcFace embedding size
    tokens: int = 4
    cross_attention_dim: int = 768


@dataclass(frozen=True)
class AudioProjConfig:
    window: int = 5  # frames i-2..i+2
    layers: int = 12  # wav2vec2 transformer layers kept
    channels: int = 768  # wav2vec2 hidden size
    intermediate_dim: int = 512
    output_dim: int = 768
    tokens: int = 32

    @property
    def input_dim(self) -> int:
        return self.window * self.layers * self.channels


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to build the composite net whose state dict is `net.pth`."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    motion: MotionModuleConfig = field(default_factory=MotionModuleConfig)
    audio: AudioModuleConfig = field(default_factory=AudioModuleConfig)
    face_locator: FaceLocatorConfig = field(default_factory=FaceLocatorConfig)
    imageproj: ImageProjConfig = field(default_factory=ImageProjConfig)
    audioproj: AudioProjConfig = field(default_factory=AudioProjConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetConfig":
        """Read the `tiny_config.json` format (diffusers/Hallo field names)."""
        unet = data["unet"]
        extra = data.get("unet_additional_kwargs", {})
        motion_kwargs = extra.get("motion_module_kwargs", {})
        down_types = unet.get("down_block_types", ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"])
        mid_type = unet.get("mid_block_type", "UNetMidBlock2DCrossAttn")
        if mid_type != "UNetMidBlock2DCrossAttn":
            raise ValueError(f"unsupported mid_block_type {mid_type!r}: Hallo uses UNetMidBlock2DCrossAttn")
        heads = unet.get("attention_head_dim", 8)
        if not isinstance(heads, int):
            raise ValueError("per-block attention_head_dim lists are not supported; Hallo uses one number (8)")
        fl = data.get("face_locator", {})
        ip = data.get("imageproj", {})
        ap = data.get("audioproj", {})
        return cls(
            unet=UNetConfig(
                in_channels=unet.get("in_channels", 4),
                out_channels=unet.get("out_channels", 4),
                block_out_channels=tuple(unet["block_out_channels"]),
                layers_per_block=unet.get("layers_per_block", 2),
                down_block_has_attention=tuple(t.startswith("CrossAttn") for t in down_types),
                attention_heads=heads,
                cross_attention_dim=unet.get("cross_attention_dim", 768),
                norm_num_groups=unet.get("norm_num_groups", 32),
                norm_eps=unet.get("norm_eps", 1e-5),
                flip_sin_to_cos=unet.get("flip_sin_to_cos", True),
                freq_shift=unet.get("freq_shift", 0),
            ),
            motion=MotionModuleConfig(
                heads=motion_kwargs.get("num_attention_heads", 8),
                max_frames=motion_kwargs.get("temporal_position_encoding_max_len", 32),
                num_attention_blocks=len(motion_kwargs.get("attention_block_types", ["Temporal_Self"] * 2)),
            ),
            audio=AudioModuleConfig(
                audio_dim=extra.get("audio_attention_dim", 768),
                heads=heads,
            ),
            face_locator=FaceLocatorConfig(
                conditioning_channels=fl.get("conditioning_channels", 3),
                block_out_channels=tuple(fl.get("block_out_channels", (16, 32, 64, 128))),
                embedding_channels=fl.get("conditioning_embedding_channels", 320),
            ),
            imageproj=ImageProjConfig(
                embedding_dim=ip.get("clip_embeddings_dim", 512),
                tokens=ip.get("clip_extra_context_tokens", 4),
                cross_attention_dim=ip.get("cross_attention_dim", 768),
            ),
            audioproj=AudioProjConfig(
                window=ap.get("seq_len", 5),
                layers=ap.get("blocks", 12),
                channels=ap.get("channels", 768),
                intermediate_dim=ap.get("intermediate_dim", 512),
                output_dim=ap.get("output_dim", 768),
                tokens=ap.get("context_tokens", 32),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Inverse of `from_dict` (the parts that describe the net)."""
        u = self.unet
        n = len(u.block_out_channels)
        down_types = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in u.down_block_has_attention]
        up_types = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in u.up_block_has_attention]
        assert len(down_types) == n
        return {
            "unet": {
                "in_channels": u.in_channels,
                "out_channels": u.out_channels,
                "block_out_channels": list(u.block_out_channels),
                "layers_per_block": u.layers_per_block,
                "down_block_types": down_types,
                "up_block_types": up_types,
                "mid_block_type": "UNetMidBlock2DCrossAttn",
                "attention_head_dim": u.attention_heads,
                "cross_attention_dim": u.cross_attention_dim,
                "norm_num_groups": u.norm_num_groups,
                "norm_eps": u.norm_eps,
                "flip_sin_to_cos": u.flip_sin_to_cos,
                "freq_shift": u.freq_shift,
            },
            "unet_additional_kwargs": {
                "audio_attention_dim": self.audio.audio_dim,
                "motion_module_kwargs": {
                    "num_attention_heads": self.motion.heads,
                    "temporal_position_encoding_max_len": self.motion.max_frames,
                    "attention_block_types": ["Temporal_Self"] * self.motion.num_attention_blocks,
                },
            },
            "face_locator": {
                "conditioning_channels": self.face_locator.conditioning_channels,
                "block_out_channels": list(self.face_locator.block_out_channels),
                "conditioning_embedding_channels": self.face_locator.embedding_channels,
            },
            "imageproj": {
                "clip_embeddings_dim": self.imageproj.embedding_dim,
                "clip_extra_context_tokens": self.imageproj.tokens,
                "cross_attention_dim": self.imageproj.cross_attention_dim,
            },
            "audioproj": {
                "seq_len": self.audioproj.window,
                "blocks": self.audioproj.layers,
                "channels": self.audioproj.channels,
                "intermediate_dim": self.audioproj.intermediate_dim,
                "output_dim": self.audioproj.output_dim,
                "context_tokens": self.audioproj.tokens,
            },
        }

    @classmethod
    def from_json_file(cls, path: str | Path) -> "NetConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def replace(self, **changes: Any) -> "NetConfig":
        return dataclasses.replace(self, **changes)
