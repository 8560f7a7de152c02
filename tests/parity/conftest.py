"""Reading parity cases and judging a result by the fixture folder's own tolerances.

Every size and setting comes from the folder's files, so these tests hold for any fixture
folder of the same format (see ../shared/parity/README.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import torch

from tests.conftest import hallo3_parity_dir, parity_dir


@dataclass(frozen=True)
class Tolerance:
    atol: float | None  # None: exact equality
    rms: float | None


def _ceil_1sig(x: float) -> float:
    """Round up to one significant digit, as the fixture README's tables do."""
    if x <= 0:
        return 0.0
    exp = math.floor(math.log10(x))
    return math.ceil(round(x / 10**exp, 9)) * 10**exp


class Case:
    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self.json_path = root / f"{name}.json"
        self.tensor_path = root / f"{name}.safetensors"

    @property
    def present(self) -> bool:
        return self.json_path.is_file() and self.tensor_path.is_file()

    @cached_property
    def settings(self) -> dict:
        return json.loads(self.json_path.read_text())

    @cached_property
    def tensors(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.tensor_path))

    def names(self, *prefixes: str) -> list[str]:
        """Tensor names in the case file, read from the header only (cheap at collection time)."""
        if not self.present:
            return []
        from safetensors import safe_open

        with safe_open(str(self.tensor_path), "pt") as f:
            return sorted(k for k in f.keys() if k.startswith(prefixes))

    @cached_property
    def _measured(self) -> dict:
        return json.loads((self.root / "tolerance.json").read_text())

    def tolerance(self, tensor: str) -> Tolerance:
        """10x / 4x the larger measured max-abs / rms deviation (float64 re-run, other library
        versions), floored at 1e-6 x max|value| / 1e-6, rounded up to one digit: the rule the
        fixture README gives for its "recommended" columns."""
        f64 = self._measured.get("float64", {}).get(self.name, {}).get(tensor)
        alt = self._measured.get("alt_env_fp32", {}).get(self.name, {}).get(tensor)
        runs = [r for r in (f64, alt) if r]
        if not runs:
            raise KeyError(f"tolerance.json has no measurement for {self.name}/{tensor}")
        if f64 is None and all(r.get("equal") for r in runs):
            return Tolerance(None, None)  # integer arithmetic (the masks case): exact
        max_abs = max(r.get("max_abs", 0.0) for r in runs)
        rms = max(r.get("rms", 0.0) for r in runs)
        ref_max = max(r.get("ref_max_abs", 0.0) for r in runs)
        return Tolerance(_ceil_1sig(max(10 * max_abs, 1e-6 * ref_max)), _ceil_1sig(max(4 * rms, 1e-6)))


def assert_matches(actual: torch.Tensor, expected: torch.Tensor, tol: Tolerance, what: str) -> None:
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    if tol.atol is None:
        assert torch.equal(actual.to(expected.dtype), expected), f"{what}: not exactly equal"
        return
    diff = (actual.double() - expected.double()).abs()
    max_abs = diff.max().item()
    rms = diff.pow(2).mean().sqrt().item()
    assert max_abs <= tol.atol and rms <= tol.rms, (
        f"{what}: max abs {max_abs:.3e} (tol {tol.atol:.1e}), rms {rms:.3e} (tol {tol.rms:.1e})"
    )


def case(name: str) -> Case:
    return Case(parity_dir(), name)


def hallo3_case(name: str) -> Case:
    """A case of the Hallo3 fixture set (same file layout and tolerance rule as Hallo's)."""
    return Case(hallo3_parity_dir(), name)


@pytest.fixture(scope="session")
def tiny_config(parity_path: Path):
    from hallo_pipeline.hallo.config import NetConfig

    return NetConfig.from_json_file(parity_path / "tiny_config.json")


@pytest.fixture(scope="session")
def tiny_net(parity_path: Path, tiny_config):
    from hallo_pipeline.hallo.checkpoint import load_net

    return load_net(parity_path / "models" / "net.pth", config=tiny_config)


@pytest.fixture(scope="session")
def tiny_codec(parity_path: Path):
    from hallo_pipeline.hallo.vae import LatentCodec, load_vae

    return LatentCodec(load_vae(parity_path / "models" / "vae"))
