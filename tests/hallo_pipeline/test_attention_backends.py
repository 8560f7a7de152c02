"""Choosing an attention kernel: which package serves each option, their layouts, and the errors."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from hallo_pipeline.attention_backends import BACKENDS, select_kernel
from hallo_pipeline.config import ATTENTION_OPTIONS
from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo.models.attention import sdpa
from tests import fake_attention

GPU = torch.device("cuda")  # only a value here: choosing a kernel computes nothing


def _qkv(heads: int = 5, q_len: int = 7, kv_len: int = 3, head_dim: int = 8):
    """(N, heads, L, d) views of (N, L, heads*d) tensors, as `Attention` hands them to its kernel."""
    g = torch.Generator().manual_seed(0)

    def split(length):
        return torch.randn(2, length, heads * head_dim, generator=g).view(2, length, heads, head_dim).transpose(1, 2)

    return split(q_len), split(kv_len), split(kv_len)


@pytest.mark.parametrize("option", ["auto", "sdpa"])
def test_auto_and_sdpa_are_pytorchs_kernel_on_any_device(option) -> None:
    assert select_kernel(option, torch.device("cpu"), torch.float32) is sdpa
    assert select_kernel(option, GPU, torch.float16) is sdpa


def test_a_callable_is_taken_as_the_kernel() -> None:
    def kernel(q, k, v):
        return q

    assert select_kernel(kernel, torch.device("cpu"), torch.float32) is kernel


@pytest.mark.parametrize(
    ("installed", "option"), [("flash3", "flash"), ("flash3_lse", "flash"), ("flash2", "flash"), ("sage", "sage")]
)
def test_each_backend_gives_sdpas_numbers_in_its_own_layout(monkeypatch, installed, option) -> None:
    calls = fake_attention.install(monkeypatch, installed)
    kernel = select_kernel(option, GPU, torch.bfloat16)
    q, k, v = _qkv(q_len=7, kv_len=3)
    torch.testing.assert_close(kernel(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-6)
    assert calls == [((2, 7, 5, 8), (2, 3, 5, 8))]  # (batch, seqlen, heads, headdim)


def test_flash_prefers_flashattention3(monkeypatch) -> None:
    calls3 = fake_attention.install(monkeypatch, "flash3")
    calls2: list = []
    fa2 = fake_attention.fake_flash_attn(fake_attention.FA2_MODULE, calls2)
    monkeypatch.setitem(sys.modules, fake_attention.FA2_MODULE, fa2)
    select_kernel("flash", GPU, torch.float16)(*_qkv())
    assert len(calls3) == 1 and calls2 == []


def test_sage_leaves_head_dims_above_128_to_sdpa(monkeypatch) -> None:
    calls = fake_attention.install(monkeypatch, "sage")
    kernel = select_kernel("sage", GPU, torch.float16)
    q, k, v = _qkv(heads=2, head_dim=160)  # SD-1.5's deepest level
    torch.testing.assert_close(kernel(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=0, atol=0)
    assert calls == []
    kernel(*_qkv(heads=8, head_dim=40))
    assert calls == [((2, 7, 8, 40), (2, 3, 8, 40))]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("flash", r"attention 'flash' needs FlashAttention \(flash_attn_interface for FlashAttention-3, or flash_attn "
                  r"for FlashAttention-2\), which does not import \(flash_attn_interface: .*; flash_attn: .*\); "
                  r"install it \(pip install flash-attn .*\) or use attention 'sdpa'"),
        ("sage", r"attention 'sage' needs the sageattention package, which does not import \(sageattention: .*\); "
                 r"install it \(pip install sageattention\) or use attention 'sdpa'"),
    ],
)
def test_a_missing_package_names_the_install_and_the_alternative(monkeypatch, option, message) -> None:
    fake_attention.install(monkeypatch, "none")
    with pytest.raises(InputError, match=message):
        select_kernel(option, GPU, torch.float16)


@pytest.mark.parametrize("option", ["flash", "sage"])
def test_the_cpu_is_refused_even_with_the_package(monkeypatch, option) -> None:
    fake_attention.install(monkeypatch, "flash2" if option == "flash" else "sage")
    with pytest.raises(InputError, match=rf"attention '{option}' runs only on a CUDA GPU, but the device is cpu; "
                                         r"use attention 'sdpa' \(or 'auto'\) on this device"):
        select_kernel(option, torch.device("cpu"), torch.float16)


@pytest.mark.parametrize("option", ["flash", "sage"])
def test_fp32_is_refused(monkeypatch, option) -> None:
    fake_attention.install(monkeypatch, "flash2" if option == "flash" else "sage")
    with pytest.raises(InputError, match=rf"attention '{option}' needs fp16 or bf16, but the precision is fp32; "
                                         r"choose precision fp16 or bf16, or use attention 'sdpa'"):
        select_kernel(option, GPU, torch.float32)


def test_an_unknown_name_lists_the_options() -> None:
    with pytest.raises(InputError, match=r"attention 'xformers' is unknown; use one of auto, sdpa, flash, sage"):
        select_kernel("xformers", GPU, torch.float16)
    assert ATTENTION_OPTIONS == ("auto", "sdpa", *BACKENDS)
