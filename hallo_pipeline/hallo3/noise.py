"""Where Hallo3's random numbers come from (SPEC §7.4, §9.4, §11).

Every draw of a run (motion-frame drop maps, VAE posterior noise, the sampler's initial and per-step
noise) is asked of one `NoiseSource`, in the release's order:

    noise = SeededNoise(seed)                      # the default: one seeded CPU generator
    noise = ReplayedNoise(recorded, kinds)         # the parity fixtures' `input.noise.NNN`, in order

Draws are always float32 on the CPU (the caller moves them): the CPU generator gives the same numbers on
any machine, so one seed gives one video whatever the device or precision, and a run that asks in the
release's order gets the release's own stream after `torch.manual_seed(seed)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import torch

from ..config import SEED

RAND, RANDN = "rand", "randn"


@runtime_checkable
class NoiseSource(Protocol):
    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal float32 values on the CPU."""
        ...

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        """Uniform [0, 1) float32 values on the CPU."""
        ...


class SeededNoise:
    """torch's CPU generator seeded once; `draws` counts what was asked (for logs and checks)."""

    def __init__(self, seed: int):
        self.seed = SEED.check(seed)
        self.generator = torch.Generator("cpu").manual_seed(seed)
        self.draws = 0

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        self.draws += 1
        return torch.randn(tuple(shape), generator=self.generator, dtype=torch.float32)

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        self.draws += 1
        return torch.rand(tuple(shape), generator=self.generator, dtype=torch.float32)


class ReplayedNoise:
    """Recorded draws handed out in order. A draw of another shape, or of another kind where `kinds`
    ("rand" / "randn" / "randn_like", one per draw) is given, is an error: it means the caller's order
    of draws differs from the recording's."""

    def __init__(self, draws: Iterable[torch.Tensor], kinds: Sequence[str] | None = None):
        self._draws = [torch.as_tensor(d) for d in draws]
        self._kinds = None if kinds is None else [RANDN if k.startswith(RANDN) else k for k in kinds]
        if self._kinds is not None and len(self._kinds) != len(self._draws):
            raise ValueError(f"{len(self._kinds)} kinds given for {len(self._draws)} draws")
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self._draws) - self.position

    def _next(self, kind: str, shape: Sequence[int]) -> torch.Tensor:
        index = self.position
        if index >= len(self._draws):
            raise RuntimeError(f"all {len(self._draws)} recorded draws are used; draw {index} ({kind}) was asked for")
        draw = self._draws[index]
        if tuple(draw.shape) != tuple(shape):
            raise RuntimeError(
                f"recorded draw {index} has shape {tuple(draw.shape)}; {kind}{tuple(shape)} was asked for"
            )
        if self._kinds is not None and self._kinds[index] != kind:
            raise RuntimeError(f"recorded draw {index} is a {self._kinds[index]} draw; a {kind} draw was asked for")
        self.position += 1
        return draw.to(torch.float32)

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        return self._next(RANDN, shape)

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        return self._next(RAND, shape)
