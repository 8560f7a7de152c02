"""Choosing the compute device and precision, and keeping idle models off the GPU when asked."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import InputError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """auto: the first CUDA GPU, else the CPU. Anything else must name a device this machine has."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"device {device!r} is unknown; use auto, cpu, cuda or cuda:N (N = the GPU's number)", "device"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {str(device)!r} was asked for but no CUDA GPU is available; use device 'cpu'", "device"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}", "device",
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(
                "device 'mps' was asked for but this PyTorch build or Mac has no MPS; use device 'cpu'", "device"
            )
    elif device.type != "cpu":
        raise InputError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps", "device")
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
        raise InputError(f"precision {dtype!r} is unknown; use one of auto, {', '.join(DTYPES)}", "dtype") from None


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
    def use(self, *modules: torch.nn.Module, memory: int = 0) -> Iterator[None]:
        """`modules` on `device` for the block. `memory`: bytes the block's work needs beside their weights, a
        hint for placements that share the device with other models (ComfyUI's frees that much first); this one
        keeps nothing but the modules in use on the device, so it has nothing to free."""
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
