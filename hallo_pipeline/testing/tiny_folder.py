"""What every family's `make-tiny-models` shares: the random init, the refusal to write over a model folder,
and the parts all families read from the same place (wav2vec2, face analysis, landmarker, vocal separator)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

# The shared parts' folders under a model root (official layout), which a tiny folder writes.
SHARED_FOLDERS = ("wav2vec", "face_analysis", "audio_separator")


@torch.no_grad()
def random_init(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random, also those the releases zero-initialise, so each one matters:
    matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.05^2). Buffers are kept."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim > 1:
            values = torch.randn(p.shape, generator=generator) * (1.0 / p[0].numel()) ** 0.5
        elif name.endswith("weight"):
            values = 1.0 + 0.1 * torch.randn(p.shape, generator=generator)
        else:
            values = 0.05 * torch.randn(p.shape, generator=generator)
        p.copy_(values)
    return module


def _new_name(root: Path) -> str:
    return f"{root.name}-2" if root.name.endswith("-tiny") else f"{root.name}-tiny"


def check_tiny_target(root: str | Path, folders: Iterable[str], force: bool = False) -> Path:
    """Refuse a target that is a file, cannot be written, or already holds one of `folders` (real
    weights live in folders of this very layout: random ones must never replace them silently)."""
    from ..errors import InputError

    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{str(root)!r} is a file, not a folder; give make-tiny-models a new folder", "dir")
    taken = [name for name in folders if (root / name).exists()]
    if taken and not force:
        raise InputError(
            f"{str(root)!r} already holds {', '.join(n + '/' for n in taken)}: make-tiny-models would write random "
            "weights over them (if these are the real weights, they would be lost). Use a new folder of its own, "
            f"e.g. {str(root.parent / _new_name(root))!r}, or pass --force to replace them", "dir",
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InputError(
            f"cannot write into {str(root)!r} ({exc.strerror or exc}); choose a writable folder", "dir"
        ) from exc
    return root


def write_face_landmarker_first(root: Path, face_landmarker: bool, mediapipe_wheel: str | Path | None,
                                download: bool) -> None:
    """The one part that may need the network, written first so a failure leaves little behind."""
    from ..face.landmarks import TASK_FILE
    from .tiny_face_landmarker import write_face_landmarker

    if face_landmarker:
        write_face_landmarker(root / TASK_FILE, wheel=mediapipe_wheel, download=download)


def write_shared_parts(root: Path, seed: int, wav2vec_hidden: int, wav2vec_layers: int = 12) -> None:
    """wav2vec2 (`wav2vec_hidden` wide, `wav2vec_layers` deep), the face analysis ONNX stand-ins and the identity
    vocal separator, where `ModelFolder` looks for them."""
    from ..audio.separation import KNOWN_MODELS
    from .tiny_face_models import write_tiny_face_models
    from .tiny_separator import write_mdx_model
    from .tiny_wav2vec2 import write_tiny_wav2vec2

    write_tiny_wav2vec2(root / "wav2vec" / "wav2vec2-base-960h", hidden_size=wav2vec_hidden,
                        layers=wav2vec_layers, conv_dim=wav2vec_hidden, seed=seed)
    write_tiny_face_models(root / "face_analysis" / "models", fixed_face=True)
    params = KNOWN_MODELS["Kim_Vocal_2.onnx"]
    write_mdx_model(root / "audio_separator" / "Kim_Vocal_2.onnx", params.dim_f, params.dim_t)
