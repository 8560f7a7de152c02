"""Choosing the compute device and precision, and keeping idle models off the GPU when asked."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import InputError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use device 'cpu'")
    return device


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """auto: fp16 on GPU (what the weights are stored in), fp32 on CPU (half precision is slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise InputError(f"precision {dtype!r} is unknown; use one of auto, {', '.join(DTYPES)}") from None


class Placement:
    """Where a model waits and where it computes.

    With `offload` set, a model lives on `offload` and is moved to `device` only for the
    duration of a `use(...)` block, so idle models do not hold GPU memory.
    """

    def __init__(self, device: torch.device, offload: torch.device | None = None):
        self.device = device
        self.offload = offload

    def home(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.offload if self.offload is not None else self.device)

    @contextlib.contextmanager
    def use(self, *modules: torch.nn.Module) -> Iterator[None]:
        if self.offload is None:
            yield
            return
        for m in modules:
            m.to(self.device)
        try:
            yield
        finally:
            for m in modules:
                m.to(self.offload)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
