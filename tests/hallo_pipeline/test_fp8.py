"""fp8 weight storage shared by the families (hallo_pipeline/fp8.py): the scale, the exact upcast, the layer swap."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hallo_pipeline import fp8
from hallo_pipeline.errors import InputError
from hallo_pipeline.fp8 import FP8, FP8_MAX, Fp8Conv2d, Fp8Linear, fp8_scale, layers_of, linear_weight, store_fp8


def _trained_like(layer: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.02)  # a trained network's size
    return layer


def _rounded(layer: nn.Module, scale: float) -> torch.Tensor:
    """What e4m3 storage must hold: each weight rounded once, on the grid scaled by `scale`."""
    return (layer.weight / scale).to(FP8).float() * scale


@pytest.mark.parametrize("amax", [1e-3, 0.02, 0.3, 1.0, 7.5, 900.0])
def test_the_scale_is_a_power_of_two_that_fills_e4m3s_range(amax: float) -> None:
    assert FP8_MAX == torch.finfo(FP8).max
    weight = torch.tensor([amax, -amax / 3, 0.0])
    scale = fp8_scale(weight)
    assert math.log2(scale) == int(math.log2(scale))
    assert FP8_MAX / 2 < amax / scale <= FP8_MAX
    assert fp8_scale(torch.zeros(3)) == 1.0


def test_an_fp8_linear_computes_with_its_rounded_weight_and_nothing_else() -> None:
    linear = _trained_like(nn.Linear(24, 40))
    fp8_linear = Fp8Linear.from_linear(linear)
    assert fp8_linear.weight.dtype == FP8 and fp8_linear.bias is linear.bias
    assert fp8_linear.weight_scale.dtype == torch.float32
    expected = _rounded(linear, fp8_linear.weight_scale.item())
    assert torch.equal(fp8_linear.dequantized(torch.float32), expected)
    # A power-of-two scale makes the upcast exact in bf16 and fp16 too: both hold every e4m3 value times 2^k.
    for dtype in (torch.bfloat16, torch.float16):
        assert torch.equal(fp8_linear.dequantized(dtype).float(), expected)
    assert torch.equal(linear_weight(fp8_linear, torch.float32), expected)
    assert linear_weight(linear, torch.float32) is linear.weight
    # e4m3 keeps 3 mantissa bits: each weight in the normal range is within 2^-4 of itself (relative).
    normal = (linear.weight / fp8_linear.weight_scale).abs() >= 2.0**-6
    error = ((expected - linear.weight).abs() / linear.weight.abs())[normal]
    assert normal.float().mean() > 0.9 and error.max() <= 2.0**-4 and error.max() > 0
    x = torch.randn(5, 7, 24, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fp8_linear(x), F.linear(x, expected, linear.bias))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=1, bias=False)], ids=["3x3", "strided", "1x1-no-bias"])
def test_an_fp8_conv_computes_with_its_rounded_weight_and_keeps_its_geometry(kwargs: dict) -> None:
    conv = _trained_like(nn.Conv2d(6, 10, **kwargs))
    fp8_conv = Fp8Conv2d.from_conv(conv)
    assert fp8_conv.weight.dtype == FP8 and fp8_conv.weight.shape == conv.weight.shape
    assert (fp8_conv.stride, fp8_conv.padding, fp8_conv.bias is None) == (conv.stride, conv.padding, conv.bias is None)
    expected = _rounded(conv, fp8_conv.weight_scale.item())
    x = torch.randn(2, 6, 9, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fp8_conv(x), conv._conv_forward(x, expected, conv.bias))
    assert fp8_conv(x.to(torch.bfloat16)).dtype == torch.bfloat16  # computes in the input's dtype


def test_fp8_layers_move_save_and_load_as_modules_do() -> None:
    model = nn.Sequential(_trained_like(nn.Linear(8, 8)), nn.ReLU(), _trained_like(nn.Conv2d(8, 4, 1), seed=1))
    store_fp8(layers_of(model, (nn.Linear, nn.Conv2d)))
    state = model.state_dict()
    assert state["0.weight"].dtype == FP8 and "0.weight_scale" in state and "2.weight_scale" in state
    model.to("meta")  # what a placement does: the scale travels with its weight
    assert {t.device.type for t in model.state_dict().values()} == {"meta"}
    fresh = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    store_fp8(layers_of(fresh, (nn.Linear, nn.Conv2d)))
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_layers_of_finds_exact_types_and_leaves_the_skipped_ones() -> None:
    inner = nn.Sequential(nn.Linear(4, 4), nn.Conv2d(4, 4, 1), nn.LayerNorm(4))
    model = nn.Sequential(nn.Linear(4, 4), inner, nn.Conv2d(4, 4, 3))
    found = layers_of(model, (nn.Linear, nn.Conv2d), skip=[model[2]])
    assert [(parent, name) for parent, name, _ in found] == [(model, "0"), (inner, "0"), (inner, "1")]
    assert [(p, n) for p, n, _ in layers_of(model)] == [(model, "0"), (inner, "0")]
    store_fp8(found)
    assert layers_of(model, (nn.Linear, nn.Conv2d)) == [(model, "2", model[2])]  # converted ones are not found again


def test_without_a_float8_dtype_fp8_storage_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setattr(fp8, "FP8", None)
    with pytest.raises(InputError, match=r"fp8: this PyTorch \(.*\) has no float8_e4m3fn dtype .* install PyTorch "
                                         r"2\.1 or newer, or load without fp8 weights") as err:
        fp8.require_fp8()
    assert err.value.input == "fp8"
    linear = nn.Linear(2, 2)
    with pytest.raises(InputError):
        store_fp8([(nn.Sequential(linear), "0", linear)])


def test_a_device_that_cannot_hold_float8_is_refused_by_name(monkeypatch) -> None:
    fp8.require_fp8("cpu")  # the CPU holds and upcasts float8

    def no_float8(*args, **kwargs):
        raise TypeError("Trying to convert Float8_e4m3fn to the MPS backend but it does not have support for it")

    monkeypatch.setattr(torch, "zeros", no_float8)  # what such a device answers
    with pytest.raises(InputError, match=r"fp8: the device mps cannot hold float8_e4m3fn weights in this PyTorch "
                                         r"\(Trying .*\); load without fp8 weights, or on another device") as err:
        fp8.require_fp8("mps")
    assert err.value.input == "fp8"
