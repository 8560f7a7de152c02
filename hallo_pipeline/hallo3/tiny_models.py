"""A complete Hallo3 model folder in the layout of fudan-generative-ai/hallo3 with tiny random weights
(`make-tiny-models --hallo3`).

The same networks and files as the release (SAT checkpoint with `latest`, SAT VAE pickle, T5 folder, and the
parts shared with Hallo), so every loading path runs end to end in seconds on a CPU; the output is noise.
The sizes the shapes cannot tell go into `hallo3/<iteration>/config.json` beside the weights (`loading.py`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..testing.tiny_folder import (
    SHARED_FOLDERS,
    check_tiny_target,
    random_init,
    write_face_landmarker_first,
    write_shared_parts,
)
from .checkpoint import CHECKPOINT_FOLDER, CHECKPOINT_STEM, TRACKER_FILE
from .config import Hallo3Config
from .loading import CONFIG_FILE
from .text import T5_DIR
from .vae import VAE_FILE, VAEConfig, sat_to_diffusers_key

ITERATION = "1"  # the release's iteration folder

# The parity set's small sizes (`tiny_config.json` layout): two layers, 64 wide, a 64x96 working size.
TINY_CONFIG: dict[str, Any] = {
    "dit": {
        "num_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "time_embed_dim": 32, "text_length": 16,
        "text_hidden_size": 32, "latent_height": 8, "latent_width": 12, "patch_size": 2, "in_channels": 32,
        "out_channels": 16, "num_frames": 49, "time_compressed_rate": 4, "face_cross_attn_hidden_size": 24,
        "cross_attn_hidden_size": 48,
    },
    "audio_proj": {"seq_len": 5, "blocks": 12, "channels": 32, "intermediate_dim": 16, "output_dim": 48,
                   "context_tokens": 4},
    "face_proj": {"hidden_size": 24, "clip_embeddings_dim": 512, "clip_extra_context_tokens": 4},
    "vae": {"ch": 32, "ch_mult": [1, 2, 2, 4], "num_res_blocks": 1, "z_channels": 16, "scale_factor": 0.7},
    "image_size": [64, 96],
    "sampling_num_frames": 13,
    "latent_channels": 16,
    "vae_factor": 8,
}
T5_VOCAB = 40

# What make_tiny_models_hallo3 writes under the root: the top folders of the repo layout.
TINY_FOLDERS = (CHECKPOINT_FOLDER, VAE_FILE.parts[0], T5_DIR.as_posix(), *SHARED_FOLDERS)


def write_tiny_networks(folder: Path, seed: int, config: Mapping[str, Any] = TINY_CONFIG) -> Path:
    """`latest`, `<iteration>/mp_rank_00_model_states.pt` (`{'module': state_dict}`, bfloat16 as the release
    is assumed to be) and the `config.json` beside it."""
    from .model import build_hallo3, to_checkpoint_key

    nets = random_init(build_hallo3(Hallo3Config.from_dict(config)), seed)  # RoPE buffers keep their tables
    state = {to_checkpoint_key(k): v.to(torch.bfloat16).contiguous() for k, v in nets.state_dict().items()}
    (folder / ITERATION).mkdir(parents=True, exist_ok=True)
    (folder / TRACKER_FILE).write_text(ITERATION)
    weights = folder / ITERATION / f"{CHECKPOINT_STEM}.pt"
    torch.save({"module": state}, weights)
    (folder / ITERATION / CONFIG_FILE).write_text(json.dumps(dict(config), indent=1))
    return weights


def diffusers_to_sat_key(key: str, levels: int) -> str:
    """The inverse of `vae.sat_to_diffusers_key` (the release's names of a diffusers CogVideoX VAE tensor)."""
    rules = (
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"),
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", lambda m: f"encoder.down.{m[1]}.downsample.{m[2]}"),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3]}"),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.{m[2]}"),
        (r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\..+", lambda m: m[0]),
    )
    for pattern, rename in rules:
        match = re.fullmatch(pattern, key)
        if match:
            sat = re.sub(r"\.conv_shortcut\.", ".nin_shortcut.", rename(match))
            if sat_to_diffusers_key(sat, levels) != key:  # the loader must map it straight back
                raise AssertionError(f"VAE key {key} does not round-trip ({sat})")
            return sat
    raise KeyError(key)


def write_tiny_vae(path: Path, seed: int, config: VAEConfig) -> Path:
    """`3d-vae.pt`: `{'state_dict': ...}` in the SAT names, float32."""
    from .vae import build_vae

    model = random_init(build_vae(config, device="cpu"), seed)
    levels = len(config.ch_mult)
    state = {diffusers_to_sat_key(k, levels): v.contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, path)
    return path


def make_tiny_models_hallo3(
    root: str | Path,
    seed: int = 0,
    *,
    force: bool = False,
    face_landmarker: bool = True,
    mediapipe_wheel: str | Path | None = None,
    download: bool = True,
    config: Mapping[str, Any] = TINY_CONFIG,
) -> Path:
    """Write a model folder laid out like fudan-generative-ai/hallo3 (the files inference reads, SPEC §1).

    Refuses a folder that already holds any of its model folders unless `force`; the face landmarker and
    the shared parts are the ones Hallo's tiny folder has (`hallo.tiny_models.make_tiny_models`).
    """
    from ..testing.tiny_t5 import write_tiny_t5

    checked = Hallo3Config.from_dict(config)  # a wrong config fails before anything is written
    vae_config = VAEConfig.from_dict(config.get("vae", {}))
    root = check_tiny_target(root, TINY_FOLDERS, force)
    write_face_landmarker_first(root, face_landmarker, mediapipe_wheel, download)
    write_tiny_networks(root / CHECKPOINT_FOLDER, seed, config)
    write_tiny_vae(root / VAE_FILE, seed + 1, vae_config)
    write_tiny_t5(root / T5_DIR, d_model=checked.dit.text_hidden_size, vocab_size=T5_VOCAB, seed=seed + 2)
    write_shared_parts(root, seed + 3, wav2vec_hidden=checked.audio_proj.channels,
                       wav2vec_layers=checked.audio_proj.blocks)
    return root
