"""The CogVideoX 3D causal VAE of Hallo3 (SPEC §6), run by diffusers' `AutoencoderKLCogVideoX`.

The release ships the VAE in SwissArmyTransformer's layout (`cogvideox-5b-i2v-sat/vae/3d-vae.pt`, a
pickle of `{'state_dict': {encoder.*, decoder.*}}`); `sat_to_diffusers_key` is the one place that maps
its names onto diffusers' modules. Encoding samples the posterior with noise the caller supplies (so a
recorded draw can be replayed) and scales by 0.7; decoding runs the latent frames through the decoder
in the release's chunks, carrying the causal-convolution cache from chunk to chunk.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..errors import InputError, MissingDependencyError
from .checkpoint import load_pickle
from .key_table import KeyTable, WeightsFileError

VAE_FILE = Path("cogvideox-5b-i2v-sat") / "vae" / "3d-vae.pt"  # inside the model folder (HF repo layout)
VAE_SOURCE = "cogvideox-5b-i2v-sat/vae/3d-vae.pt of the Hugging Face repo fudan-generative-ai/hallo3"
DECODE_CHUNK = 2  # latent frames per decoder call; the first call also takes an odd one out (SPEC §6.3)
LOGVAR_RANGE = (-30.0, 20.0)


@dataclass(frozen=True)
class VAEConfig:
    """Sizes in the release's terms (SAT encoder/decoder params; `tiny_config.json`'s `vae` section).
    Defaults: the released VAE (SPEC §6.1)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 3
    z_channels: int = 16
    scale_factor: float = 0.7
    norm_groups: int = 32
    temporal_compression: int = 4

    @classmethod
    def from_dict(cls, values: Mapping) -> VAEConfig:
        values = dict(values)
        if "temporal_compress_times" in values:  # the SAT encoder/decoder parameter's name
            values.setdefault("temporal_compression", values.pop("temporal_compress_times"))
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "ch_mult" in known:
            known["ch_mult"] = tuple(known["ch_mult"])
        return cls(**known)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def diffusers_config(self) -> dict:
        """`AutoencoderKLCogVideoX` arguments for these sizes."""
        levels = len(self.ch_mult)
        return {
            "down_block_types": ("CogVideoXDownBlock3D",) * levels,
            "up_block_types": ("CogVideoXUpBlock3D",) * levels,
            "block_out_channels": tuple(self.ch * m for m in self.ch_mult),
            "layers_per_block": self.num_res_blocks,
            "latent_channels": self.z_channels,
            "norm_num_groups": self.norm_groups,
            "temporal_compression_ratio": self.temporal_compression,
            "scaling_factor": self.scale_factor,
        }

    def describe(self) -> str:
        return (f"ch {self.ch}, ch_mult {list(self.ch_mult)}, {self.num_res_blocks} res blocks, "
                f"z {self.z_channels}")


# ----------------------------------------------------------------------------------------------
# SAT names -> diffusers names
# ----------------------------------------------------------------------------------------------
def sat_to_diffusers_key(key: str, levels: int) -> str | None:
    """The diffusers name of one SAT VAE tensor (None: training-only `loss.*`, not part of the VAE).

    `levels` = len(ch_mult). SAT numbers the decoder's levels from the output side (`up.0` makes the
    full-size frames), diffusers from the input side, hence `levels - 1 - k`.
    """
    if key.startswith("loss."):
        return None
    rules = (
        (r"(encoder|decoder)\.mid\.block_([12])\.(.+)", lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{m[3]}"),
        (r"encoder\.down\.(\d+)\.block\.(\d+)\.(.+)", lambda m: f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{m[3]}"),
        (r"encoder\.down\.(\d+)\.downsample\.(.+)", lambda m: f"encoder.down_blocks.{m[1]}.downsamplers.0.{m[2]}"),
        (r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)",
         lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{m[3]}"),
        (r"decoder\.up\.(\d+)\.upsample\.(.+)",
         lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.{m[2]}"),
        (r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(.+)", lambda m: m[0]),
    )
    for pattern, rename in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return re.sub(r"\.nin_shortcut\.", ".conv_shortcut.", rename(match))
    raise KeyError(key)


def convert_sat_state_dict(state: Mapping[str, torch.Tensor], levels: int, path: str | Path = "the VAE"
                           ) -> dict[str, torch.Tensor]:
    """Rename every tensor once; a name no rule knows, or two names landing on one, is an error."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        try:
            name = sat_to_diffusers_key(key, levels)
        except KeyError:
            unknown.append(key)
            continue
        if name is None:
            continue
        if name in converted:
            raise WeightsFileError(f"weights file {str(path)!r}: two tensors map onto {name}; it is not the "
                                   f"CogVideoX VAE; use {VAE_SOURCE}", path)
        converted[name] = value
    if unknown:
        raise WeightsFileError(
            f"weights file {str(path)!r} has {len(unknown)} tensors that are not part of the CogVideoX VAE, e.g. "
            f"{', '.join(unknown[:3])}; use {VAE_SOURCE}", path,
        )
    return converted


# ----------------------------------------------------------------------------------------------
# building and loading
# ----------------------------------------------------------------------------------------------
_DIFFUSERS_TOO_OLD = (
    "Hallo3's VAE needs diffusers 0.31 or newer (its CogVideoX VAE blocks take the causal cache as an "
    "argument from 0.31 on); install it with: pip install -U 'diffusers>=0.31'"
)


def build_vae(config: VAEConfig = VAEConfig(), device: str | torch.device = "meta"):
    """diffusers' `AutoencoderKLCogVideoX` for `config`, by default without memory (meta)."""
    try:
        from diffusers import AutoencoderKLCogVideoX
    except ImportError as exc:
        raise MissingDependencyError(_DIFFUSERS_TOO_OLD) from exc
    with torch.device(device):
        model = AutoencoderKLCogVideoX(**config.diffusers_config())
    if "conv_cache" not in inspect.signature(model.decoder.forward).parameters:
        raise MissingDependencyError(_DIFFUSERS_TOO_OLD)
    return model


def load_vae(path: str | Path, config: VAEConfig = VAEConfig(), device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> Hallo3VAE:
    """Read the release's `3d-vae.pt` safely, check it against `config` and load it strictly."""
    path = Path(path)
    state = convert_sat_state_dict(load_pickle(path, "state_dict"), len(config.ch_mult), path)
    model = build_vae(config)
    expected = KeyTable.from_shapes({k: v.shape for k, v in model.state_dict().items()})
    problems = expected.problems({k: v.shape for k, v in state.items()})
    if problems:
        raise WeightsFileError(
            f"weights file {str(path)!r} does not match the CogVideoX VAE ({config.describe()}): "
            f"{'; '.join(problems)}. Use {VAE_SOURCE}, or the VAE settings that belong to the file", path,
        )
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in state.items()}, strict=True, assign=True)
    return Hallo3VAE(model.eval().requires_grad_(False), config)


# ----------------------------------------------------------------------------------------------
# encoding and decoding
# ----------------------------------------------------------------------------------------------
def decode_chunks(num_frames: int, size: int = DECODE_CHUNK) -> list[tuple[int, int]]:
    """Latent frame ranges of the decoder calls: `size` frames each, the first also taking the remainder
    (13 latents: [0:3], [3:5], ..., [11:13] -> 9 + 5 x 8 = 49 frames, SPEC §6.3)."""
    if num_frames < 1:
        raise InputError(f"latents have {num_frames} frames; at least 1 is needed", "latents")
    first = size + num_frames % size if num_frames >= size else num_frames
    return [(0, first)] + [(start, start + size) for start in range(first, num_frames, size)]


class Hallo3VAE:
    """Frames (b, 3, T, H, W) in [-1, 1] <-> scaled latents (b, z, t, H/8, W/8), t = 1 + (T - 1) // 4
    (3 frames -> 1 latent: SPEC §6.2's quirk, kept)."""

    def __init__(self, model, config: VAEConfig = VAEConfig()):
        self.model, self.config = model, config
        self.scale_factor = config.scale_factor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _check_frames(self, frames: torch.Tensor) -> None:
        f = self.config.spatial_factor
        if frames.ndim != 5 or frames.shape[1] != 3 or frames.shape[-1] % f or frames.shape[-2] % f:
            raise InputError(
                f"frames of shape {tuple(frames.shape)} cannot be encoded: expected (batch, 3, frames, height, "
                f"width) with height and width multiples of {f}", "frames",
            )

    @torch.no_grad()
    def moments(self, frames: torch.Tensor) -> torch.Tensor:
        """The encoder's output (b, 2z, t, h, w) = [mean ; logvar], logvar not yet clamped."""
        self._check_frames(frames)
        # All frames in one encoder pass, as the release encodes its 1- and 3-frame inputs; diffusers'
        # `encode` would split more than 8 frames into batches, and tile large frames when tiling is on.
        moments, _ = self.model.encoder(frames.to(self.device, self.dtype))
        return moments  # CogVideoX has no quant_conv (diffusers' use_quant_conv=False)

    def latent_shape(self, frames_shape: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
        """Shape of `encode`'s result (and of the noise it needs) for frames of this shape."""
        b, _, t, h, w = frames_shape
        f = self.config.spatial_factor
        return (b, self.config.z_channels, 1 + (t - 1) // self.config.temporal_compression, h // f, w // f)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A posterior sample `mean + exp(logvar / 2) * noise`, times the scale factor (SPEC §6.2).

        `noise` ~ N(0, 1) of `latent_shape(frames.shape)`, drawn by the caller (the release samples
        instead of taking the mean; diffusers' `latent_dist.sample` would draw the noise itself).
        """
        mean, logvar = self.moments(frames).chunk(2, dim=1)
        if tuple(noise.shape) != tuple(mean.shape):
            raise InputError(
                f"posterior noise has shape {tuple(noise.shape)}, but frames of shape {tuple(frames.shape)} "
                f"encode to {tuple(mean.shape)}; draw it with latent_shape(frames.shape)", "noise",
            )
        std = torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))
        return (mean + std * noise.to(mean)) * self.scale_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, output_device: str | torch.device | None = None, tiled: bool = False
               ) -> torch.Tensor:
        """Scaled latents (b, z, t, h, w) -> frames (b, 3, 1 + 4 (t - 1), H, W), ~[-1, 1], not clamped."""
        return self.decode_unscaled(latents.to(self.device, self.dtype) / self.scale_factor, output_device, tiled)

    @torch.no_grad()
    def decode_unscaled(self, z: torch.Tensor, output_device: str | torch.device | None = None, tiled: bool = False
                        ) -> torch.Tensor:
        """The decoder on latents already divided by the scale factor, chunk by chunk (`decode_chunks`).

        The chunks are ours rather than diffusers' `decode` frame batching: they decide the output (the
        decoder treats an odd frame count's first frame apart, and the causal cache carries across calls),
        so the release's order is pinned here, independent of diffusers' defaults and its tiling switch.
        Each chunk's frames move to `output_device` (e.g. "cpu") as soon as they are decoded.
        """
        if z.ndim != 5 or z.shape[1] != self.config.z_channels:
            raise InputError(f"latents of shape {tuple(z.shape)} cannot be decoded: expected (batch, "
                             f"{self.config.z_channels}, frames, height, width)", "latents")
        z = z.to(self.device, self.dtype)
        if tiled:
            return self._decode_tiled(z, output_device)
        cache = None
        frames = []
        for start, end in decode_chunks(z.shape[2]):
            out, cache = self.model.decoder(z[:, :, start:end], conv_cache=cache)
            frames.append(out if output_device is None else out.to(output_device))
        del cache  # the release clears its cache after the last chunk; ours dies with this call
        return torch.cat(frames, dim=2)

    def _decode_tiled(self, z: torch.Tensor, output_device: str | torch.device | None) -> torch.Tensor:
        """diffusers' spatial tiling of the CogVideoX decoder (off unless asked: it changes the frames): tiles of
        half the frame's height and width, overlapping by 1/6 of a tile's height and 1/5 of its width (3 x 3 tiles
        at 480 x 720, the last row and column narrower), blended linearly across the overlaps. For 480 x 720 these
        are diffusers' own defaults, chosen by its authors for that size; the decoder's activations shrink about
        4x (benchmarks/results/hallo3-full-estimate-bf16.md). Within each tile the latent
        frames go through the decoder in the release's chunks with the causal cache carried (diffusers'
        `tiled_decode` splits time as `decode_chunks` does)."""
        f = self.config.spatial_factor
        rows, cols = tile_latents(z.shape[-2], z.shape[-1])
        self.model.enable_tiling(tile_sample_min_height=rows * f, tile_sample_min_width=cols * f,
                                 tile_overlap_factor_height=1 / 6, tile_overlap_factor_width=1 / 5)
        try:
            frames = self.model.tiled_decode(z, return_dict=False)[0]
        finally:
            self.model.disable_tiling()
        expected = (z.shape[-2] * f, z.shape[-1] * f)
        if tuple(frames.shape[-2:]) != expected:  # a tiling that does not add up must never pass silently
            raise RuntimeError(f"the tiled decode made {tuple(frames.shape[-2:])} frames for {expected}")
        return frames if output_device is None else frames.to(output_device)


def tile_latents(height: int, width: int) -> tuple[int, int]:
    """Latent rows and columns of one decode tile: about half the latent frame, rounded up to a multiple of 6 rows
    and 5 columns. diffusers steps from tile to tile by int(tile x (1 - overlap)) latents but keeps
    tile x (1 - overlap) pixels x 8 of each, so only these multiples (for its overlaps of 1/6 and 1/5) tile the
    frame exactly; 60 x 90 latents (480 x 720) give its defaults, 30 x 45."""
    return 6 * math.ceil(height / 12), 5 * math.ceil(width / 10)
