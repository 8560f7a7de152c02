"""Build the Hallo3 main + reference DiTs on any device and load the release's state dict strictly.

The one key mapping between our modules and the checkpoint: `main.<name>` is `model.diffusion_model.<name>`,
`reference.<name>` is `ref_model.diffusion_model.<name>`; below those prefixes the names are the checkpoint's.
Reading the file itself (the SAT `latest` / `mp_rank_00_model_states.pt` layout) is `checkpoint.py`'s job; this
module takes the flat tensor dict it holds under `module`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from ..safe_loading import key_problems
from .config import Hallo3Config
from .dit import Hallo3DiT
from .rope import rope_tables

CHECKPOINT_PREFIXES = {"main": "model.diffusion_model.", "reference": "ref_model.diffusion_model."}


class Hallo3Networks(nn.Module):
    """Everything in `hallo3/1/mp_rank_00_model_states.pt`: the main DiT (with the face/audio modules and
    projections) and the reference DiT that fills its bank."""

    def __init__(self, config: Hallo3Config):
        super().__init__()
        self.config = config
        self.main = Hallo3DiT(config, cross_attention=True)
        self.reference = Hallo3DiT(config, cross_attention=False)


def to_checkpoint_key(name: str) -> str:
    """`main.x` -> `model.diffusion_model.x`, `reference.x` -> `ref_model.diffusion_model.x`."""
    family, _, rest = name.partition(".")
    return CHECKPOINT_PREFIXES[family] + rest


def from_checkpoint_key(key: str) -> str | None:
    """The inverse of `to_checkpoint_key`; None for a key of neither DiT (T5, VAE, ...)."""
    for family, prefix in CHECKPOINT_PREFIXES.items():
        if key.startswith(prefix):
            return f"{family}.{key[len(prefix):]}"
    return None


def checkpoint_shapes(config: Hallo3Config) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape of every tensor the networks of `config` hold, in state-dict order (no memory)."""
    with torch.device("meta"):
        nets = Hallo3Networks(config)
    return {to_checkpoint_key(k): tuple(v.shape) for k, v in nets.state_dict().items()}


def build_hallo3(
    config: Hallo3Config, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Hallo3Networks:
    """Fresh networks (zeros/PyTorch's default init) on `device` (`meta` for shapes only) in `dtype`;
    the RoPE tables stay float32."""
    with torch.device(device):
        nets = Hallo3Networks(config)
    for p in nets.parameters():
        p.data = p.data.to(dtype)
    return nets.eval().requires_grad_(False)


def _check_keys(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, torch.Tensor]) -> None:
    problems = key_problems(expected, {k: v.shape for k, v in found.items()})
    if problems:
        raise CheckpointError(
            f"the Hallo3 weights do not match the network: {'; '.join(problems)}. The file is incomplete, from "
            "another model (e.g. the CogVideoX base transformer instead of hallo3/1/mp_rank_00_model_states.pt), "
            "or the config's sizes are wrong"
        )


def _rope_table(stored: torch.Tensor, computed: torch.Tensor, key: str) -> torch.Tensor:
    """The float32 table, after checking the stored one describes the same grid (a wrong latent size or head
    split would show here as O(1) differences; storage rounding stays far below the bound)."""
    atol = max(4 * torch.finfo(stored.dtype).eps, 1e-4)
    if not torch.allclose(stored.float(), computed, rtol=0.0, atol=atol):
        worst = (stored.float() - computed).abs().max().item()
        raise CheckpointError(
            f"the checkpoint's RoPE table {key} differs from the one the config's latent grid gives "
            f"(max {worst:.2e}); the config's latent size, frame count or head size does not fit these weights"
        )
    return computed


def load_hallo3(
    state_dict: Mapping[str, torch.Tensor],
    config: Hallo3Config,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Hallo3Networks:
    """Build the networks for `config` and load `state_dict` (checkpoint keys, both families) strictly into
    them, cast to `dtype` on `device`. Keys of other models (T5, VAE) are refused, like any unexpected key."""
    with torch.device("meta"):
        nets = Hallo3Networks(config)
    expected = {to_checkpoint_key(k): tuple(v.shape) for k, v in nets.state_dict().items()}
    _check_keys(expected, state_dict)
    # The RoPE tables are recomputed in float32 (SPEC §4.3): they depend only on the config's grid.
    cos, sin = rope_tables(config.dit)
    computed = {"mixins.pos_embed.freqs_cos": cos, "mixins.pos_embed.freqs_sin": sin}
    state = {}
    for key, tensor in state_dict.items():
        name = from_checkpoint_key(key)
        local = name.partition(".")[2]
        if local in computed:
            state[name] = _rope_table(tensor, computed[local], key).to(device)
        else:
            state[name] = tensor.to(device=device, dtype=dtype)
    nets.load_state_dict(state, strict=True, assign=True)
    return nets.eval().requires_grad_(False)


def load_hallo3_file(
    path, config: Hallo3Config, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Hallo3Networks:
    """The networks of `config` from a weights file: the converted `.safetensors` (memory-mapped: each tensor is
    read as it is cast, so the peak is one copy in `dtype`) or the release's pickle (read with
    `weights_only=True`). Names and shapes are checked against `config`'s networks before anything is read."""
    from .checkpoint import open_weights
    from .key_table import KeyTable

    table = KeyTable.from_shapes(checkpoint_shapes(config), name="the networks of this config")
    with open_weights(path, table) as weights:
        return load_hallo3(weights.state_dict(), config, dtype, device)
