"""Stand-ins for flash-attn (2 and 3) and SageAttention, for machines without them (or without a GPU).

Each has the real function's documented signature and tensor layout, checks what the real kernel
would demand of its inputs, records the shapes it saw, and computes the attention with SDPA, so a
network running through it must give SDPA's numbers unless our wrapper mixes up the layout.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

# Taken now, so a test may replace F.scaled_dot_product_attention to catch attention that bypasses the kernel.
_SDPA = F.scaled_dot_product_attention
FA3_MODULE = "flash_attn_interface"
FA2_MODULE = "flash_attn"
SAGE_MODULE = "sageattention"


def _sequence_major_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(batch, seqlen, heads, headdim) in and out, as flash-attn and sageattn(tensor_layout="NHD") have it."""
    for t in (q, k, v):
        assert t.dim() == 4 and t.is_contiguous(), f"not a contiguous 4-d tensor: {t.shape}"
    assert k.shape == v.shape, f"k {tuple(k.shape)} and v {tuple(v.shape)} differ"
    assert (q.shape[0], q.shape[2], q.shape[3]) == (k.shape[0], k.shape[2], k.shape[3]), (
        f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on batch, heads or head dim (dim 2 must be the heads)"
    )
    out = _SDPA(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).contiguous()


def _module(name: str, **functions) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(functions)
    return module


def fake_flash_attn(name: str, calls: list, returns_lse: bool = False) -> types.ModuleType:
    """`flash_attn_func` of FlashAttention-2 (module flash_attn) or -3 (flash_attn_interface, whose signature has no
    dropout_p); `returns_lse`: a FlashAttention-3 build from before July 2025, which returned (out, softmax_lse)."""

    def attention(q, k, v, softmax_scale, causal, options):
        assert softmax_scale is None and causal is False and not options
        calls.append((tuple(q.shape), tuple(k.shape)))
        out = _sequence_major_attention(q, k, v)
        return (out, torch.zeros(q.shape[0], q.shape[2], q.shape[1])) if returns_lse else out

    def flash_attn_func_2(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **options):
        assert dropout_p == 0.0
        return attention(q, k, v, softmax_scale, causal, options)

    def flash_attn_func_3(q, k, v, softmax_scale=None, causal=False, **options):
        return attention(q, k, v, softmax_scale, causal, options)

    return _module(name, flash_attn_func=flash_attn_func_3 if name == FA3_MODULE else flash_attn_func_2)


def fake_sageattention(calls: list) -> types.ModuleType:
    def sageattn(q, k, v, tensor_layout="HND", is_causal=False, sm_scale=None, return_lse=False, **kwargs):
        assert is_causal is False and sm_scale is None and not return_lse
        assert q.shape[-1] <= 128, f"sageattn raises ValueError for head dim {q.shape[-1]}"
        calls.append((tuple(q.shape), tuple(k.shape)))
        if tensor_layout == "NHD":
            return _sequence_major_attention(q, k, v)
        assert tensor_layout == "HND", tensor_layout
        return _sequence_major_attention(*(t.transpose(1, 2).contiguous() for t in (q, k, v))).transpose(1, 2)

    return _module(SAGE_MODULE, sageattn=sageattn)


def install(monkeypatch: pytest.MonkeyPatch, backend: str) -> list:
    """Make exactly one attention package importable: "flash3", "flash3_lse", "flash2" or "sage" (or none: "none").
    Returns the list the fake appends (q shape, k shape) to on every call."""
    calls: list = []
    modules = {
        FA3_MODULE: fake_flash_attn(FA3_MODULE, calls, returns_lse=backend == "flash3_lse")
        if backend.startswith("flash3") else None,
        FA2_MODULE: fake_flash_attn(FA2_MODULE, calls) if backend == "flash2" else None,
        SAGE_MODULE: fake_sageattention(calls) if backend == "sage" else None,
    }
    for name, module in modules.items():  # None in sys.modules makes `import name` fail
        monkeypatch.setitem(sys.modules, name, module)
    return calls
