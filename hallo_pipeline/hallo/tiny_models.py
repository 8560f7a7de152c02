"""A complete model folder in the official layout with tiny random weights (`make-tiny-models`).

Same architectures and files as the real ones, so every loading and inference code path runs
end to end in seconds on a CPU; the output is noise, which is all a test needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..testing.tiny_folder import SHARED_FOLDERS, random_init, write_face_landmarker_first, write_shared_parts
from ..testing.tiny_folder import check_tiny_target as _check_tiny_target
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
TINY_FOLDERS = ("hallo", "hallo2", "sd-vae-ft-mse", *SHARED_FOLDERS)


def check_tiny_target(root: str | Path, force: bool = False) -> Path:
    """Refuse a target that is a file, cannot be written, or already holds Hallo's model folders."""
    return _check_tiny_target(root, TINY_FOLDERS, force)


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
    root = check_tiny_target(root, force)
    write_face_landmarker_first(root, face_landmarker, mediapipe_wheel, download)
    write_tiny_net(root / "hallo", seed)
    if hallo2:
        write_tiny_net(root / "hallo2", seed + 1)
    write_tiny_vae(root / "sd-vae-ft-mse", seed + 2)
    write_shared_parts(root, seed + 3, wav2vec_hidden=WAV2VEC_HIDDEN)
    return root
