"""Running a Hugging Face wav2vec2 model the way Hallo needs it, with bounded memory.

Hallo does not call the model's `forward`: it interpolates the CNN features to the video frame
rate *between* the feature encoder and the transformer, and keeps every transformer layer's
output. So we drive the model's submodules ourselves (the conv layers, `feature_projection`, the
encoder's positional conv, norms and each layer's projections, norms and feed-forward). That
keeps us independent of how a transformers version's `forward` methods are called and collect
hidden states (4.x and 5.x differ), and draws no random numbers (4.x calls `torch.rand` for
LayerDrop even in eval mode).

Memory: the CNN runs over the waveform in chunks (its first GroupNorm needs statistics over the
whole input, so those are gathered in a first pass); the transformer runs on the whole sequence
with PyTorch's fused attention (no frames x frames matrix) and writes each layer's output
straight into the caller's buffer.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .._optional import require
from ..errors import CheckpointError

WAV2VEC_DIR = Path("wav2vec") / "wav2vec2-base-960h"
# Keys a CTC checkpoint loaded into the bare model may lack: only used when training with masking.
_OPTIONAL_KEYS = {"masked_spec_embed"}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars (expected: the CTC head is unused)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled() if hasattr(hf_logging, "is_progress_bar_enabled") else None
    hf_logging.set_verbosity_error()
    if bars is not None:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def read_preprocessor_config(folder: Path) -> dict:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r} cannot be read ({exc}); download the wav2vec2 folder again") from exc


def _really_missing(info: dict) -> list[str]:
    """Missing keys, less those loaded under their legacy weight-norm names.

    wav2vec2-base-960h stores the positional conv's weight norm as `weight_g` / `weight_v`; with
    recent torch the module holds `parametrizations.weight.original0/1`, and torch's weight-norm
    loads the old names into them while some transformers versions (4.x) still list them as
    missing (and the old names as unexpected)."""

    def bare(key: str) -> str:
        return key.split("wav2vec2.", 1)[1] if key.startswith("wav2vec2.") else key

    legacy = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
    unexpected = {bare(k) for k in info.get("unexpected_keys", ())}
    missing = []
    for key in map(bare, info.get("missing_keys", ())):
        if key in _OPTIONAL_KEYS:
            continue
        renamed = next((key[: -len(new)] + old for new, old in legacy.items() if key.endswith(new)), None)
        if renamed is None or renamed not in unexpected:
            missing.append(key)
    return sorted(missing)


def _weight_files(folder: Path, suffix: str) -> list[Path]:
    """The weight files transformers will read: `model.safetensors` / `pytorch_model.bin`, else the shards."""
    single = folder / ("model.safetensors" if suffix == ".safetensors" else "pytorch_model.bin")
    return [single] if single.is_file() else sorted(folder.glob(f"*{suffix}"))


def _damaged(path: Path, detail: object) -> CheckpointError:
    return CheckpointError(
        f"wav2vec2 weights {str(path)!r} are damaged or truncated ({detail}); "
        f"download {path.name} of facebook/wav2vec2-base-960h again"
    )


def _check_safetensors(path: Path) -> None:
    """Refuse a truncated or damaged safetensors file by reading its header (not its tensors): the
    header must parse and its tensors must cover the file exactly, which a cut-off download or
    random bytes fail."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise _damaged(path, exc) from exc


# The start of torch.save's legacy (non-zip) format: its magic number, pickled with protocol 2.
_LEGACY_TORCH_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")


def _check_pickle(path: Path) -> None:
    """Refuse a torch pickle that is neither a whole zip archive (torch.save's format; its directory
    is at the end, so a cut-off download fails) nor starts like the legacy format (random bytes)."""
    try:
        if zipfile.is_zipfile(path):
            return
        with path.open("rb") as handle:
            start = handle.read(len(_LEGACY_TORCH_MAGIC))
    except OSError as exc:
        raise _damaged(path, exc) from exc
    if start != _LEGACY_TORCH_MAGIC:
        raise _damaged(path, "neither a complete zip archive nor torch's legacy format")


def load_wav2vec2(
    folder: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A `Wav2Vec2Model` in eval mode from a Hugging Face folder (safetensors preferred)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"wav2vec2 folder {str(folder)!r} has no config.json; download facebook/wav2vec2-base-960h as in the "
            f"Hugging Face repo fudan-generative-ai/hallo (folder {WAV2VEC_DIR.as_posix()})"
        )
    has_safetensors = any(folder.glob("*.safetensors"))
    if not has_safetensors and not any(folder.glob("*.bin")):
        raise CheckpointError(
            f"wav2vec2 folder {str(folder)!r} has no weights (model.safetensors or pytorch_model.bin)"
        )
    transformers = require("transformers", "transformers", "The audio features (wav2vec2)")
    from safetensors import SafetensorError

    suffix = ".safetensors" if has_safetensors else ".bin"
    for weights in _weight_files(folder, suffix):
        (_check_safetensors if has_safetensors else _check_pickle)(weights)
    # What a damaged file the header checks let through raises (a cut-off legacy pickle: RuntimeError
    # "unexpected EOF"); the original message is kept in ours.
    damaged = (SafetensorError,) if has_safetensors else (pickle.UnpicklingError, EOFError, RuntimeError)
    weights_name = f"model{suffix}" if has_safetensors else f"pytorch_model{suffix}"
    kwargs = {"output_loading_info": True, "use_safetensors": True if has_safetensors else None}
    with quiet_transformers():
        try:
            model, info = transformers.Wav2Vec2Model.from_pretrained(str(folder), **kwargs)
        except damaged as exc:
            raise _damaged(folder / weights_name, exc) from exc
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"wav2vec2 folder {str(folder)!r} cannot be loaded ({exc}); download it again"
            ) from exc
    missing = _really_missing(info)
    if missing:
        raise CheckpointError(
            f"wav2vec2 weights in {str(folder)!r} lack {len(missing)} tensors (e.g. {missing[0]!r}): not a "
            "wav2vec2 checkpoint or a partial download; download facebook/wav2vec2-base-960h again"
        )
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# the CNN feature encoder, chunked
# ----------------------------------------------------------------------------------------------
def _conv_geometry(layers: nn.ModuleList) -> list[tuple[int, int]]:
    return [(int(layer.conv.kernel_size[0]), int(layer.conv.stride[0])) for layer in layers]


def cnn_output_length(feature_extractor: nn.Module, samples: int) -> int:
    length = samples
    for kernel, stride in _conv_geometry(feature_extractor.conv_layers):
        length = (length - kernel) // stride + 1 if length >= kernel else 0
    return length


def _receptive_field(geometry: list[tuple[int, int]]) -> tuple[int, int]:
    """(samples one output frame sees, samples between output frames): 400 and 320 for wav2vec2."""
    field, hop = 1, 1
    for kernel, stride in geometry:
        field += (kernel - 1) * hop
        hop *= stride
    return field, hop


def receptive_field(feature_extractor: nn.Module) -> int:
    """The fewest samples that give one CNN frame."""
    return _receptive_field(_conv_geometry(feature_extractor.conv_layers))[0]


class _GlobalGroupNorm:
    """The first conv layer's GroupNorm with statistics over the *whole* input, applied chunk by chunk."""

    def __init__(self, norm: nn.GroupNorm, channel_sum: torch.Tensor, channel_sq: torch.Tensor, count: int):
        groups = norm.num_groups
        per_group = channel_sum.numel() // groups
        total = count * per_group
        mean = channel_sum.view(groups, per_group).sum(1) / total
        var = (channel_sq.view(groups, per_group).sum(1) / total - mean**2).clamp_min(0)
        self.mean = mean.repeat_interleave(per_group)
        self.inv_std = torch.rsqrt(var + norm.eps).repeat_interleave(per_group)
        self.weight, self.bias = norm.weight, norm.bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 arithmetic also for half-precision inputs, as nn.GroupNorm does internally.
        work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        y = (x.to(work) - self.mean.to(work)[:, None]) * self.inv_std.to(work)[:, None]
        if self.weight is not None:
            y = y * self.weight.to(work)[:, None] + self.bias.to(work)[:, None]
        return y.to(x.dtype)


@torch.no_grad()
def cnn_features(feature_extractor: nn.Module, input_values: torch.Tensor, chunk_frames: int = 500) -> torch.Tensor:
    """The conv feature encoder on a 1-D waveform: (channels, frames), computed `chunk_frames` output
    frames at a time (500 = 10 s at wav2vec2's 50 Hz), equal to running it on the whole input."""
    layers = feature_extractor.conv_layers
    geometry = _conv_geometry(layers)
    field, hop = _receptive_field(geometry)
    for index, layer in enumerate(layers):
        if index > 0 and isinstance(getattr(layer, "layer_norm", None), nn.GroupNorm):
            raise CheckpointError("unsupported wav2vec2 variant: a GroupNorm after the first conv layer")
    first = layers[0]
    global_norm = isinstance(getattr(first, "layer_norm", None), nn.GroupNorm)
    x = input_values.reshape(1, 1, -1)
    samples = x.shape[-1]
    frames = cnn_output_length(feature_extractor, samples)
    if frames <= 0:
        raise ValueError(f"{samples} samples are fewer than one wav2vec2 frame needs ({field})")

    norm = None
    if global_norm:
        # Pass 1: per-channel sums of the first conv's output over the whole input (float64, so that
        # summing millions of values loses nothing the single-pass GroupNorm keeps).
        kernel0, stride0 = geometry[0]
        first_frames = (samples - kernel0) // stride0 + 1
        step = max(1, chunk_frames * hop // stride0)
        channel_sum = channel_sq = None
        for start in range(0, first_frames, step):
            stop = min(first_frames, start + step)
            y = first.conv(x[..., start * stride0 : (stop - 1) * stride0 + kernel0])[0].double()
            s, q = y.sum(-1), (y * y).sum(-1)
            channel_sum = s if channel_sum is None else channel_sum + s
            channel_sq = q if channel_sq is None else channel_sq + q
        norm = _GlobalGroupNorm(first.layer_norm, channel_sum, channel_sq, first_frames)

    # Pass 2: output frames [a, b) depend only on samples [a * hop, (b - 1) * hop + field).
    outputs = []
    for start in range(0, frames, chunk_frames):
        stop = min(frames, start + chunk_frames)
        h = x[..., start * hop : (stop - 1) * hop + field]
        rest = layers
        if norm is not None:
            h = first.activation(norm(first.conv(h)[0])[None])
            rest = layers[1:]
        for layer in rest:
            h = layer(h)
        outputs.append(h[0])
    return torch.cat(outputs, dim=-1)


# ----------------------------------------------------------------------------------------------
# projection and transformer, every layer's output kept
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def project_features(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """(1, frames, conv_dim) -> (1, frames, hidden); the projection returns a tuple in most versions."""
    out = model.feature_projection(features)
    return out[0] if isinstance(out, tuple) else out


def _self_attention(attention: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's multi-head self-attention through PyTorch's fused kernel, which never builds the
    frames x frames matrix (transformers 4.x only has the eager version for wav2vec2: 22 GB of
    attention weights per layer for ten minutes of audio)."""
    batch, frames, width = x.shape
    heads = attention.num_heads

    def split(projection: nn.Module) -> torch.Tensor:
        return projection(x).view(batch, frames, heads, width // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(
        split(attention.q_proj), split(attention.k_proj), split(attention.v_proj), scale=attention.scaling
    )
    return attention.out_proj(out.transpose(1, 2).reshape(batch, frames, width))


def _encoder_layer(layer: nn.Module, x: torch.Tensor, pre_norm: bool) -> torch.Tensor:
    """One transformer layer in eval mode (dropout off), from its submodules."""
    if pre_norm:  # "stable layer norm" variant (large models)
        x = x + _self_attention(layer.attention, layer.layer_norm(x))
        x = x + layer.feed_forward(layer.final_layer_norm(x))
        adapter = getattr(layer, "adapter_layer", None)
        return x + adapter(x) if adapter is not None else x
    x = layer.layer_norm(x + _self_attention(layer.attention, x))
    return layer.final_layer_norm(x + layer.feed_forward(x))


@torch.no_grad()
def transformer_layers(model: nn.Module, hidden: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Run the encoder on (1, frames, hidden) and write layer i's output to `out[:, i]` ((frames, layers, hidden)).

    These are the encoder's `hidden_states[1:]` in the convention of transformers 4.x, which the
    release used (the pre-layer embedding is not kept).
    """
    encoder = model.encoder
    pre_norm = bool(getattr(model.config, "do_stable_layer_norm", False))
    hidden = hidden + encoder.pos_conv_embed(hidden)
    if not pre_norm:  # post-norm wav2vec2 (base models) normalises before the layers
        hidden = encoder.layer_norm(hidden)
    last = len(encoder.layers) - 1
    for index, layer in enumerate(encoder.layers):
        hidden = _encoder_layer(layer, hidden, pre_norm)
        # The pre-norm variant normalises only the final output.
        kept = encoder.layer_norm(hidden) if pre_norm and index == last else hidden
        out[:, index].copy_(kept[0])
    return out
