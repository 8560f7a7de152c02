"""Find, safely read, recognise and strictly load the Hallo `net.pth` / `net.safetensors`.

One path for every file: the released 4.85 GB fp16 file and the tiny random-weight test
files go through the same code. Sizes are read off the tensor shapes; the few settings that
no shape reveals (norm groups, head counts) come from an optional `config.json` beside the
weights (tiny models) or default to the released model's values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..errors import CheckpointError
from ..safe_loading import first_line, key_problems, load_weights_only
from .config import (
    AudioModuleConfig,
    AudioProjConfig,
    FaceLocatorConfig,
    ImageProjConfig,
    MotionModuleConfig,
    NetConfig,
    UNetConfig,
)

PREFIXES = ("reference_unet.", "denoising_unet.", "face_locator.", "imageproj.", "audioproj.")
NET_FILENAMES = ("net.safetensors", "net.pth")
VARIANT_FOLDERS = {"hallo": "hallo", "hallo2": "hallo2"}
HF_REPOS = {"hallo": "fudan-generative-ai/hallo", "hallo2": "fudan-generative-ai/hallo2"}
SIDECAR_CONFIG = "config.json"


def _where_to_get(variant: str = "hallo") -> str:
    folder = VARIANT_FOLDERS.get(variant, "hallo")
    return (
        f"get it from the Hugging Face repo {HF_REPOS.get(variant, HF_REPOS['hallo'])} "
        f"(file {folder}/net.pth) and keep the repo's layout under your model folder"
    )


# ----------------------------------------------------------------------------------------------
# finding the file
# ----------------------------------------------------------------------------------------------
def find_net_file(model_dir: str | Path, variant: str = "auto") -> tuple[Path, str]:
    """Return (path of the net file, variant) inside a model folder laid out like the HF repo.

    `variant` is "hallo", "hallo2" or "auto" (Hallo when present, else Hallo2).
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise CheckpointError(f"model folder {str(root)!r} does not exist; {_where_to_get()}")
    variants = ["hallo", "hallo2"] if variant == "auto" else [variant]
    if variant not in ("auto", *VARIANT_FOLDERS):
        raise CheckpointError(f"variant {variant!r} is unknown; use 'auto', 'hallo' or 'hallo2'")
    tried = []
    for v in variants:
        for name in NET_FILENAMES:
            candidate = root / VARIANT_FOLDERS[v] / name
            tried.append(str(candidate))
            if candidate.is_file():
                return candidate, v
    raise CheckpointError(
        "no Hallo weights found in model folder {!r}; looked for: {}. {}".format(
            str(root), ", ".join(tried), _where_to_get(variants[0])
        )
    )


# ----------------------------------------------------------------------------------------------
# reading it safely
# ----------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a flat tensor dict from .safetensors (memory-mapped) or a .pth/.pt/.ckpt pickle.

    Pickles are read with `weights_only=True`: a file that needs code execution to load is
    refused, never run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist; {_where_to_get()}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"weights file {str(path)!r} is empty (an interrupted download?); download it again")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_pickle(path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"weights file {str(path)!r} is damaged or truncated ({exc}); download it again"
        ) from exc


def _damaged(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"weights file {str(path)!r} is damaged or truncated, or not a weights file at all ({detail}); "
        "download it again"
    )


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    def refused(_: str) -> CheckpointError:
        return CheckpointError(
            f"weights file {str(path)!r} is a pickle that needs to run code to load, so it was refused "
            "(only plain tensors are loaded, for safety). Use the official net.pth or a .safetensors file"
        )

    data = load_weights_only(path, damaged=lambda detail: _damaged(path, detail), refused=refused)
    return _flatten(data, path)


def _flatten(data: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept the release's flat dict, and re-saved copies nested under 'state_dict' / 'module.'."""
    if isinstance(data, Mapping) and "state_dict" in data and isinstance(data["state_dict"], Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(
            f"weights file {str(path)!r} does not hold a flat dict of tensors, so it is not a Hallo net.pth; "
            + _where_to_get()
        )
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in data.items()}


# ----------------------------------------------------------------------------------------------
# recognising it
# ----------------------------------------------------------------------------------------------
def _describe_foreign(keys: Sequence[str]) -> str:
    """Best guess of what a non-Hallo checkpoint is, to make the error actionable."""
    keyset = set(keys)
    if any(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")) for k in keys):
        return "a Stable Diffusion checkpoint (e.g. v1-5-pruned)"
    if keys and all("motion_modules" in k for k in keys):
        return "an AnimateDiff motion module (e.g. mm_sd_v15_v2.ckpt)"
    if "conv_in.weight" in keyset and any(k.startswith("down_blocks.") for k in keys):
        if any(k.startswith("encoder.") or k.startswith("decoder.") for k in keys):
            return "a VAE"
        return "a diffusers UNet (e.g. stable-diffusion-v1-5/unet)"
    if any(k.startswith(("encoder.", "decoder.", "quant_conv.")) for k in keys):
        return "a VAE"
    if any(k.startswith("wav2vec2.") for k in keys):
        return "a wav2vec2 audio encoder"
    return "not a Hallo net"


def check_is_hallo(keys: Sequence[str], path: str | Path) -> None:
    if not any(k.startswith(PREFIXES) for k in keys):
        raise CheckpointError(
            f"weights file {str(path)!r} is {_describe_foreign(list(keys))}, not a Hallo net.pth "
            f"(no keys start with {', '.join(p.rstrip('.') for p in PREFIXES)}); " + _where_to_get()
        )


# ----------------------------------------------------------------------------------------------
# sizes from shapes
# ----------------------------------------------------------------------------------------------
def _count(keys: set[str], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def detect_config(shapes: Mapping[str, Sequence[int]], hints: NetConfig | None = None) -> NetConfig:
    """Read the architecture sizes off the tensor shapes of a Hallo state dict.

    `hints` supplies what shapes cannot tell (norm groups, head counts, eps, the audio window
    and layer count); without it the released model's values are used.
    """
    hints = hints or NetConfig()
    keys = set(shapes)

    def shape(name: str) -> Sequence[int]:
        try:
            return shapes[name]
        except KeyError:
            raise CheckpointError(f"the weights lack {name!r}, so they are incomplete or not a Hallo net") from None

    d = "denoising_unet."
    n_blocks = _count(keys, rf"{d}down_blocks\.(\d+)\.resnets\.0\.conv1\.weight")
    block_out = tuple(shape(f"{d}down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(n_blocks))
    layers = _count(keys, rf"{d}down_blocks\.0\.resnets\.(\d+)\.conv1\.weight")
    has_attn = tuple(f"{d}down_blocks.{i}.attentions.0.norm.weight" in keys for i in range(n_blocks))
    unet = UNetConfig(
        in_channels=shape(f"{d}conv_in.weight")[1],
        out_channels=shape(f"{d}conv_out.weight")[0],
        block_out_channels=block_out,
        layers_per_block=layers,
        down_block_has_attention=has_attn,
        attention_heads=hints.unet.attention_heads,
        cross_attention_dim=shape(f"{d}mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight")[1],
        norm_num_groups=hints.unet.norm_num_groups,
        norm_eps=hints.unet.norm_eps,
        flip_sin_to_cos=hints.unet.flip_sin_to_cos,
        freq_shift=hints.unet.freq_shift,
    )
    mm = f"{d}mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0."
    motion = MotionModuleConfig(
        heads=hints.motion.heads,
        max_frames=shape(mm + "attention_blocks.0.pos_encoder.pe")[1],
        num_attention_blocks=_count(keys, re.escape(mm) + r"attention_blocks\.(\d+)\.to_q\.weight"),
        norm_num_groups=hints.motion.norm_num_groups,
    )
    audio = AudioModuleConfig(
        audio_dim=shape(f"{d}mid_block.audio_modules.0.transformer_blocks.0.attn2_0.to_k.weight")[1],
        heads=hints.audio.heads,
    )
    n_fl = _count(keys, r"face_locator\.blocks\.(\d+)\.weight")
    fl_channels = [shape("face_locator.conv_in.weight")[0]]
    fl_channels += [shape(f"face_locator.blocks.{i}.weight")[0] for i in range(1, n_fl, 2)]
    face_locator = FaceLocatorConfig(
        conditioning_channels=shape("face_locator.conv_in.weight")[1],
        block_out_channels=tuple(fl_channels),
        embedding_channels=shape("face_locator.conv_out.weight")[0],
    )
    ip_dim = shape("imageproj.norm.weight")[0]
    imageproj = ImageProjConfig(
        embedding_dim=shape("imageproj.proj.weight")[1],
        tokens=shape("imageproj.proj.weight")[0] // ip_dim,
        cross_attention_dim=ip_dim,
    )
    ap_out = shape("audioproj.norm.weight")[0]
    ap_in = shape("audioproj.proj1.weight")[1]
    window, n_layers = hints.audioproj.window, hints.audioproj.layers
    if ap_in % (window * n_layers):
        raise CheckpointError(
            f"audioproj input width {ap_in} is not window {window} x layers {n_layers} x channels; "
            "the file does not match this Hallo version"
        )
    audioproj = AudioProjConfig(
        window=window,
        layers=n_layers,
        channels=ap_in // (window * n_layers),
        intermediate_dim=shape("audioproj.proj1.weight")[0],
        output_dim=ap_out,
        tokens=shape("audioproj.proj3.weight")[0] // ap_out,
    )
    try:
        return NetConfig(unet, motion, audio, face_locator, imageproj, audioproj)
    except ValueError as exc:
        raise CheckpointError(f"the weights do not fit the given settings: {exc}") from exc


def read_sidecar_config(net_path: Path) -> NetConfig | None:
    """The optional `config.json` beside a (tiny) net file, in the `tiny_config.json` format."""
    sidecar = net_path.parent / SIDECAR_CONFIG
    if not sidecar.is_file():
        return None
    try:
        return NetConfig.from_json_file(sidecar)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"settings file {str(sidecar)!r} cannot be read ({exc}); fix or delete it") from exc


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------
def _check_keys(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor], path: Path) -> None:
    problems = key_problems(expected, {k: v.shape for k, v in found.items()})
    if problems:
        raise CheckpointError(
            f"weights file {str(path)!r} does not match the Hallo network: {'; '.join(problems)}. "
            "The file is incomplete, from another model, or its config.json is wrong; " + _where_to_get()
        )


def read_net_config(path: str | Path) -> NetConfig:
    """The sizes of a net file without loading its values (safetensors: the header; a zip pickle:
    memory-mapped), so the settings the weights limit are checked before any heavy work."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise _damaged(path, first_line(exc)) from exc
    else:
        shapes = {k: tuple(v.shape) for k, v in read_state_dict(path).items()}
    check_is_hallo(list(shapes), path)
    return detect_config(shapes, read_sidecar_config(path))


def load_net(
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    config: NetConfig | None = None,
):
    """Build the net for the file's sizes and load it strictly, cast to `dtype` on `device`.

    `config` (or a `config.json` beside the file) gives the settings shapes cannot tell; the
    sizes it states must agree with the file.
    """
    from .models import HalloNet

    path = Path(path)
    state = read_state_dict(path)
    check_is_hallo(list(state), path)
    hints = config or read_sidecar_config(path)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    detected = detect_config(shapes, hints)
    if config is not None and detected != config:
        raise CheckpointError(
            f"weights file {str(path)!r} has other sizes than the given config: file {detected}, config {config}"
        )
    with torch.device("meta"):
        net = HalloNet(detected)
    _check_keys({k: v.shape for k, v in net.state_dict().items()}, state, path)
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval().requires_grad_(False)
