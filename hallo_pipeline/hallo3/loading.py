"""Load everything a Hallo3 model folder holds for inference: the main + reference DiTs, the VAE and T5.

Sizes: the release's by default; a `config.json` beside the weights file (`hallo3/<iteration>/config.json`, in
the parity set's `tiny_config.json` layout: `dit`, `audio_proj`, `face_proj`, `vae` sections and the segment
fields) overrides them, which is how a tiny folder of `make-tiny-models --hallo3` says its sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError
from .config import Hallo3Config

if TYPE_CHECKING:
    from .family import Hallo3Files
    from .model import Hallo3Networks
    from .pipeline import MemoryOptions
    from .text import T5TextEncoder
    from .vae import Hallo3VAE, VAEConfig

CONFIG_FILE = "config.json"


def read_model_config(weights: str | Path) -> tuple[Hallo3Config, "VAEConfig"]:
    """The sizes of the networks in `weights` and of the VAE: the `config.json` beside the file, else the
    release's."""
    from .vae import VAEConfig

    path = Path(weights).parent / CONFIG_FILE
    if not path.is_file():
        return Hallo3Config(), VAEConfig()
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("it does not hold a JSON object")
        return Hallo3Config.from_dict(data), VAEConfig.from_dict(data.get("vae", {}))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"Hallo3 model config {str(path)!r} cannot be read ({exc}); it gives the sizes of the weights beside "
            "it: fix it, or delete it to use the released sizes"
        ) from exc


@dataclass
class Hallo3Models:
    config: Hallo3Config
    networks: "Hallo3Networks"
    vae: "Hallo3VAE"
    text_encoder: "T5TextEncoder"


def load_hallo3_models(
    files: "Hallo3Files",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: Hallo3Config | None = None,
    vae_config: "VAEConfig | None" = None,
    memory: "MemoryOptions | None" = None,
) -> Hallo3Models:
    """The DiTs, VAE and T5 of a located folder (`families.locate`), each checked against the config, on
    `device` in `dtype`. `config` / `vae_config` replace what `read_model_config` finds (a folder whose sizes
    are written elsewhere, e.g. a parity set's `tiny_config.json`). `memory` (fp8 storage, layers streamed from
    the host) is checked before anything is read and applied to the main DiT once it is loaded."""
    from .model import load_hallo3_file
    from .text import T5TextEncoder
    from .vae import load_vae

    files.require("vae", "t5")
    found, found_vae = read_model_config(files.weights)
    config, vae_config = config or found, vae_config or found_vae
    if memory is not None:
        memory.check(config.dit.num_layers)
    text_encoder = T5TextEncoder(files.t5, device=device, dtype=dtype, length=config.dit.text_length)
    if text_encoder.hidden_size != config.dit.text_hidden_size:
        raise CheckpointError(
            f"T5 folder {str(files.t5)!r} gives {text_encoder.hidden_size}-wide text features, but the Hallo3 "
            f"weights {str(files.weights)!r} take {config.dit.text_hidden_size}; use the T5 folder of the same "
            "release (t5-v1_1-xxl)"
        )
    vae = load_vae(files.vae, vae_config, device=device, dtype=dtype)
    networks = load_hallo3_file(files.weights, config, dtype=dtype, device=device)
    if memory is not None:
        memory.apply(networks.main)
    return Hallo3Models(config=config, networks=networks, vae=vae, text_encoder=text_encoder)
