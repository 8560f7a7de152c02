"""Sizes of the Hallo3 networks and the settings of one segment, as frozen dataclasses.

The defaults are the released model (`SPEC-HALLO3.md` §1-5, `hallo3_keys.tsv`); the tiny test models are the
same classes with other numbers. `Hallo3Config.from_dict` reads the fixture sets' `tiny_config.json`, whose field
names are those of the release's YAML (`network_config.params`) and of the projection constructors.

Only the DiT, the projections and the segment geometry live here; the VAE, T5 and sampler settings of the same
JSON (`vae`, `t5`) are read by their own modules.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import GUIDANCE as _SHARED_GUIDANCE
from ..config import Limit

# The user's settings of a run (the shared `config.Limit`s with Hallo3's defaults), here so that checking a run
# imports no torch. 1000: the training schedule's timesteps (`sampler.TRAIN_TIMESTEPS`).
STEPS = Limit("steps", 50, 1, 1000, True, "Hallo3 uses 50 steps (the schedule has 1000 timesteps)")
# Hard-coded in the release (its configured "dynamic CFG" is overwritten: QUIRK, SPEC §8).
GUIDANCE = Limit("cfg", 3.5, _SHARED_GUIDANCE.low, _SHARED_GUIDANCE.high, False, "Hallo3 uses 3.5")


@dataclass(frozen=True)
class DiTConfig:
    """The main and the reference DiT (same trunk; the main one adds face/audio cross-attention)."""

    num_layers: int = 42
    hidden_size: int = 3072
    num_attention_heads: int = 48
    time_embed_dim: int = 512
    text_length: int = 226  # T5 tokens, padded/truncated
    text_hidden_size: int = 4096  # T5 d_model
    latent_height: int = 60
    latent_width: int = 90
    patch_size: int = 2
    in_channels: int = 32  # noisy latent (16) ; concat latent (16)
    out_channels: int = 16
    num_frames: int = 49  # video frames of one segment
    time_compressed_rate: int = 4
    face_cross_attn_hidden_size: int = 1024  # width of the face tokens
    cross_attn_hidden_size: int = 768  # width of the audio tokens
    # SAT's unused `transformer.position_embeddings` table: loaded (the file has it) and ignored.
    max_sequence_length: int = 64
    # None: 4 x hidden_size, the release's MLP.
    inner_hidden_size: int | None = None

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}"
            )
        if self.head_dim % 16:
            # RoPE splits a head t | h | w as hd/4 | 3hd/8 | 3hd/8 dims, each made of (cos, sin) pairs.
            raise ValueError(f"head dim {self.head_dim} must be a multiple of 16 for the 3D RoPE split")
        if self.latent_height % self.patch_size or self.latent_width % self.patch_size:
            raise ValueError(
                f"latent size {self.latent_height}x{self.latent_width} is not divisible by patch_size={self.patch_size}"
            )
        if (self.num_frames - 1) % self.time_compressed_rate:
            raise ValueError(
                f"num_frames {self.num_frames} is not 1 + a multiple of "
                f"time_compressed_rate={self.time_compressed_rate}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def mlp_hidden_size(self) -> int:
        return self.inner_hidden_size or 4 * self.hidden_size

    @property
    def latent_frames(self) -> int:
        """Latent frames of a segment: the causal VAE maps 1 + 4k frames to 1 + k latents."""
        return (self.num_frames - 1) // self.time_compressed_rate + 1

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per latent frame, (rows, columns)."""
        return self.latent_height // self.patch_size, self.latent_width // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        rows, cols = self.grid
        return rows * cols

    @property
    def video_tokens(self) -> int:
        return self.latent_frames * self.tokens_per_frame

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Head dims given to the t, h and w angles."""
        hd = self.head_dim
        return hd // 4, 3 * hd // 8, 3 * hd // 8


@dataclass(frozen=True)
class FaceProjConfig:
    """Raw insightface embedding -> identity tokens (SPEC §5.1)."""

    hidden_size: int = 1024  # token width
    clip_embeddings_dim: int = 512
    clip_extra_context_tokens: int = 4


@dataclass(frozen=True)
class AudioProjConfig:
    """Windowed wav2vec2 features -> audio tokens per latent frame (SPEC §5.2)."""

    seq_len: int = 5  # window i-2 .. i+2
    blocks: int = 12  # wav2vec2 layers
    channels: int = 768  # wav2vec2 hidden size
    intermediate_dim: int = 512
    output_dim: int = 768  # token width
    context_tokens: int = 32

    @property
    def input_dim(self) -> int:
        return self.seq_len * self.blocks * self.channels


@dataclass(frozen=True)
class SegmentConfig:
    """Geometry and constants of one generated segment (SPEC §9, §11)."""

    image_size: tuple[int, int] = (480, 720)  # (H, W) the model works at
    sampling_num_frames: int = 13  # latent frames
    latent_channels: int = 16
    vae_factor: int = 8
    n_motion_frame: int = 2
    mask_rate: float = 0.1
    fps: int = 25
    sample_rate: int = 16000


@dataclass(frozen=True)
class Hallo3Config:
    dit: DiTConfig = field(default_factory=DiTConfig)
    face_proj: FaceProjConfig = field(default_factory=FaceProjConfig)
    audio_proj: AudioProjConfig = field(default_factory=AudioProjConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        dit, seg = self.dit, self.segment
        if seg.sampling_num_frames != dit.latent_frames:
            raise ValueError(
                f"sampling_num_frames {seg.sampling_num_frames} does not match the DiT's {dit.num_frames} frames "
                f"= {dit.latent_frames} latent frames"
            )
        latent = (seg.image_size[0] // seg.vae_factor, seg.image_size[1] // seg.vae_factor)
        if latent != (dit.latent_height, dit.latent_width):
            raise ValueError(
                f"image_size {tuple(seg.image_size)} / vae_factor {seg.vae_factor} = {latent} latents does not match "
                f"the DiT's latent size {(dit.latent_height, dit.latent_width)}"
            )
        if self.face_proj.hidden_size != dit.face_cross_attn_hidden_size:
            raise ValueError(
                f"face_proj.hidden_size {self.face_proj.hidden_size} differs from the DiT's face token width "
                f"face_cross_attn_hidden_size={dit.face_cross_attn_hidden_size}"
            )
        if self.audio_proj.output_dim != dit.cross_attn_hidden_size:
            raise ValueError(
                f"audio_proj.output_dim {self.audio_proj.output_dim} differs from the DiT's audio token width "
                f"cross_attn_hidden_size={dit.cross_attn_hidden_size}"
            )
        if 2 * seg.latent_channels != dit.in_channels or seg.latent_channels != dit.out_channels:
            raise ValueError(
                f"latent_channels {seg.latent_channels} does not fit the DiT's in/out channels "
                f"{dit.in_channels}/{dit.out_channels} (noisy ; concat in, v out)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hallo3Config":
        """Read the `tiny_config.json` layout; absent sections or fields keep the released values."""
        segment_fields = {f.name for f in dataclasses.fields(SegmentConfig)}
        segment = {k: v for k, v in data.items() if k in segment_fields}
        if "image_size" in segment:
            segment["image_size"] = tuple(segment["image_size"])
        return cls(
            dit=_read(DiTConfig, data.get("dit", {}), "dit"),
            face_proj=_read(FaceProjConfig, data.get("face_proj", {}), "face_proj"),
            audio_proj=_read(AudioProjConfig, data.get("audio_proj", {}), "audio_proj"),
            segment=SegmentConfig(**segment),
        )

    @classmethod
    def from_json_file(cls, path: str | Path) -> "Hallo3Config":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _read(kind: type, section: Mapping[str, Any], name: str):
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} in section {name!r}; known: {', '.join(sorted(known))}"
        )
    return kind(**section)
