"""The fixture set's tiny Hallo3 networks, loaded once per session for the Hallo3 parity cases."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

WEIGHTS = Path("models") / "hallo3" / "1" / "mp_rank_00_model_states.safetensors"


@lru_cache(maxsize=2)
def tiny_hallo3(root: Path):
    """Main + reference DiT of the set at `root`, sized by its tiny_config.json, loaded strictly in float32."""
    from safetensors.torch import load_file

    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.model import load_hallo3

    config = Hallo3Config.from_json_file(root / "tiny_config.json")
    return load_hallo3(load_file(str(root / WEIGHTS)), config)


class Recorder:
    """Forward (pre-)hooks that keep what chosen modules see or return, call by call."""

    def __init__(self):
        self.seen: dict[str, list] = {}
        self._handles = []

    def inputs(self, name: str, module) -> None:
        self._handles.append(module.register_forward_pre_hook(lambda m, args: self._keep(name, args)))

    def outputs(self, name: str, module) -> None:
        self._handles.append(module.register_forward_hook(lambda m, args, out: self._keep(name, out)))

    def _keep(self, name: str, value) -> None:
        self.seen.setdefault(name, []).append(value)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
