"""Attention kernels from optional packages (flash-attn, SageAttention) for the networks' kernel seam.

`select_kernel` turns the user's `attention` option into an `AttentionKernel` (the kernel every family's
attention layers call) for a given device and precision, or into an `InputError` that says what to
change. The optional packages are imported only when their backend is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Callable

import torch
import torch.nn.functional as F

from ._optional import first_importable
from .config import ATTENTION_OPTIONS
from .devices import DTYPES
from .errors import InputError

# (q, k, v) -> out, all (N, heads, L, head_dim) as `scaled_dot_product_attention` takes them;
# no mask, no dropout, softmax scale 1/sqrt(head_dim).
AttentionKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


HALF_PRECISIONS = (torch.float16, torch.bfloat16)
# SageAttention pads head dims below 128 but raises ValueError above it (every sageattn_* variant in
# thu-ml/SageAttention sageattention/core.py); SD-1.5's 1280-channel layers have 160 and stay on SDPA.
SAGE_MAX_HEAD_DIM = 128


def _sequence_major(attend: Callable[..., torch.Tensor]) -> AttentionKernel:
    """A kernel over (N, heads, L, d) from a function over (N, L, heads, d).

    `Attention` makes q, k, v as head-split views of contiguous (N, L, heads*d) projections, so the
    transposes here are free; `contiguous()` copies only for callers with other strides (the CUDA
    kernels need at least a unit stride on the last dim)."""

    def kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = attend(*(t.transpose(1, 2).contiguous() for t in (q, k, v)))
        return out.transpose(1, 2)

    return kernel


def flash_kernel(flash_attn_func: Callable) -> AttentionKernel:
    """flash-attn's `flash_attn_func(q, k, v)` as a kernel.

    FA2 (`flash_attn.flash_attn_func`, 2.x) and FA3 (`flash_attn_interface.flash_attn_func`, built
    from flash-attention's hopper/ folder) take (batch, seqlen, heads, headdim) fp16/bf16 CUDA
    tensors, head dims up to 256 (SD-1.5 has 40, 80, 160), and default to causal=False and a
    softmax scale of 1/sqrt(headdim), as SDPA does. FA2 returns the output; FA3 returned
    (out, softmax_lse) until flash-attention commit ed209409 ("[FA3] Don't return lse", July 2025)
    and the output alone since, so a tuple is unpacked.
    """

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = flash_attn_func(q, k, v)
        return out[0] if isinstance(out, tuple) else out

    return _sequence_major(attend)


def sage_kernel(sageattn: Callable) -> AttentionKernel:
    """SageAttention's `sageattn(q, k, v, tensor_layout=..., is_causal=False)` as a kernel.

    "NHD" is its (batch, seqlen, heads, headdim) layout: the one our projections already have, so no
    copy is made (its "HND" would need one); the output comes back in the same layout. Layers whose
    head dim it does not support use SDPA.
    """
    sequence_major = _sequence_major(partial(sageattn, tensor_layout="NHD", is_causal=False))

    def kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if q.shape[-1] > SAGE_MAX_HEAD_DIM:
            return sdpa(q, k, v)
        return sequence_major(q, k, v)

    return kernel


@dataclass(frozen=True)
class Backend:
    modules: tuple[str, ...]  # tried in this order
    needs: str  # what to call the missing package in a message
    install: str  # how to get it
    kernel: Callable[[ModuleType], AttentionKernel]


BACKENDS = {
    "flash": Backend(
        ("flash_attn_interface", "flash_attn"),
        "FlashAttention (flash_attn_interface for FlashAttention-3, or flash_attn for FlashAttention-2)",
        "pip install flash-attn (FlashAttention-3 for Hopper GPUs is built from flash-attention's hopper/ folder)",
        lambda module: flash_kernel(module.flash_attn_func),
    ),
    "sage": Backend(
        ("sageattention",), "the sageattention package", "pip install sageattention",
        lambda module: sage_kernel(module.sageattn),
    ),
}


def select_kernel(attention: str | AttentionKernel, device: str | torch.device, dtype: torch.dtype) -> AttentionKernel:
    """The kernel for the `attention` option on `device` in `dtype`; a callable is taken as the kernel itself.

    flash and sage run only on CUDA in fp16/bf16; asking for them elsewhere, or without their
    package, is an InputError rather than a silent fall-back to SDPA, so that a benchmark or a user
    never believes a kernel ran that did not.
    """
    if callable(attention):
        return attention
    if attention in ("auto", "sdpa"):  # on CUDA, PyTorch itself dispatches SDPA to flash / memory-efficient kernels
        return sdpa
    if attention not in BACKENDS:
        raise InputError(f"attention {attention!r} is unknown; use one of {', '.join(ATTENTION_OPTIONS)}")
    _check_device_and_dtype(attention, torch.device(device), dtype)
    backend = BACKENDS[attention]
    try:
        module = first_importable(*backend.modules)
    except ImportError as exc:
        raise InputError(
            f"attention {attention!r} needs {backend.needs}, which does not import ({exc}); "
            f"install it ({backend.install}) or use attention 'sdpa'"
        ) from exc
    return backend.kernel(module)


def _check_device_and_dtype(attention: str, device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cuda":
        raise InputError(
            f"attention {attention!r} runs only on a CUDA GPU, but the device is {device}; "
            "use attention 'sdpa' (or 'auto') on this device"
        )
    if dtype not in HALF_PRECISIONS:
        name = next((k for k, v in DTYPES.items() if v == dtype), str(dtype))
        raise InputError(
            f"attention {attention!r} needs fp16 or bf16, but the precision is {name}; "
            "choose precision fp16 or bf16, or use attention 'sdpa'"
        )
