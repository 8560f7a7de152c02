"""A complete model folder in the official layout with tiny random weights (`make-tiny-models`).

Same architectures and files as the real ones, so every loading and inference code path runs
end to end in seconds on a CPU; the output is noise, which is all a test needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .config import (
    AudioModuleConfig,
    AudioProjConfig,
    FaceLocatorConfig,
    ImageProjConfig,
    MotionModuleConfig,
    NetConfig,
    UNetConfig,
)

WAV2VEC_HIDDEN = 32


def tiny_net_config() -> NetConfig:
    """The parity fixtures' tiny sizes (SD-1.5 layout with small widths)."""
    return NetConfig(
        unet=UNetConfig(block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, norm_num_groups=16),
        motion=MotionModuleConfig(),
        audio=AudioModuleConfig(audio_dim=32),
        face_locator=FaceLocatorConfig(block_out_channels=(4, 8, 16, 32), embedding_channels=32),
        imageproj=ImageProjConfig(cross_attention_dim=32),
        audioproj=AudioProjConfig(channels=WAV2VEC_HIDDEN, intermediate_dim=64, output_dim=32, tokens=8),
    )


@torch.no_grad()
def random_init(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random, also those the release zero-initialises, so each one matters:
    matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.05^2)."""
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


def write_tiny_net(folder: Path, seed: int, config: NetConfig | None = None) -> Path:
    """`net.pth` (float16 like the release) and the `config.json` for the settings shapes can't tell."""
    from .models import HalloNet

    config = config or tiny_net_config()
    net = random_init(HalloNet(config), seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() for k, v in net.state_dict().items()}, folder / "net.pth")
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    return folder / "net.pth"


def write_tiny_vae(folder: Path, seed: int) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=128, scaling_factor=0.18215,
    )
    vae.save_pretrained(str(folder), safe_serialization=True)
    return folder


# What make_tiny_models writes under the root: the folders of the official layout.
TINY_FOLDERS = ("hallo", "hallo2", "sd-vae-ft-mse", "wav2vec", "face_analysis", "audio_separator")


def _new_name(root: Path) -> str:
    return f"{root.name}-2" if root.name.endswith("-tiny") else f"{root.name}-tiny"


def check_tiny_target(root: str | Path, force: bool = False) -> Path:
    """Refuse a target that is a file, cannot be written, or already holds model files (real
    weights live in folders of this very layout: random ones must never replace them silently)."""
    from ..errors import InputError

    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{str(root)!r} is a file, not a folder; give make-tiny-models a new folder", "dir")
    taken = [name for name in TINY_FOLDERS if (root / name).exists()]
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


def make_tiny_models(
    root: str | Path,
    seed: int = 0,
    hallo2: bool = True,
    *,
    force: bool = False,
    face_landmarker: bool = True,
    mediapipe_wheel: str | Path | None = None,
    download: bool = True,
) -> Path:
    """Write a model folder laid out like fudan-generative-ai/hallo (+ hallo2/net.pth).

    Refuses a folder that already holds model folders unless `force` (`check_tiny_target`).
    The face landmark model is a real one: a Face Landmarker `.task` assembled from the face models
    of the mediapipe 0.10.21 wheel (`tiny_face_landmarker`), taken from `mediapipe_wheel`, an installed
    mediapipe 0.10.21, or (when `download`) fetched with `pip download`; without it
    (`face_landmarker=False`) landmarks need the legacy face mesh of mediapipe <= 0.10.21. The vocal
    separator is an identity MDX-Net stand-in.
    """
    from ..audio.separation import KNOWN_MODELS
    from ..face.landmarks import TASK_FILE
    from ..testing.tiny_face_landmarker import write_face_landmarker
    from ..testing.tiny_face_models import write_tiny_face_models
    from ..testing.tiny_separator import write_mdx_model
    from ..testing.tiny_wav2vec2 import write_tiny_wav2vec2

    root = check_tiny_target(root, force)
    if face_landmarker:  # first: the one part that may need the network, so a failure leaves little behind
        write_face_landmarker(root / TASK_FILE, wheel=mediapipe_wheel, download=download)
    write_tiny_net(root / "hallo", seed)
    if hallo2:
        write_tiny_net(root / "hallo2", seed + 1)
    write_tiny_vae(root / "sd-vae-ft-mse", seed + 2)
    write_tiny_wav2vec2(root / "wav2vec" / "wav2vec2-base-960h", hidden_size=WAV2VEC_HIDDEN,
                        conv_dim=WAV2VEC_HIDDEN, seed=seed + 3)
    write_tiny_face_models(root / "face_analysis" / "models", fixed_face=True)
    params = KNOWN_MODELS["Kim_Vocal_2.onnx"]
    write_mdx_model(root / "audio_separator" / "Kim_Vocal_2.onnx", params.dim_f, params.dim_t)
    return root
