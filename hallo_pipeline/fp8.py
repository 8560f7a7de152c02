"""fp8 weight storage shared by the families: a layer's weight held as float8_e4m3fn times a power-of-two scale, upcast
to the input's dtype inside its own forward, so only one layer's matrix exists in the compute dtype at a time.

    require_fp8(device)                                  # an InputError where float8 cannot be held there
    store_fp8(layers_of(unet, (nn.Linear, nn.Conv2d)))   # each found layer replaced in place by its fp8 twin

Storage only: the arithmetic stays in the working dtype (fp16/bf16/fp32), so no fp8 kernels are needed and any
device that can hold the bytes runs it. Each family decides which of its layers to convert (`hallo/memory.py`,
`hallo3/memory.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

FP8 = getattr(torch, "float8_e4m3fn", None)  # PyTorch >= 2.1
FP8_MAX = 448.0  # e4m3fn's largest finite value


def require_fp8(device: torch.device | str | None = None, input_name: str = "fp8") -> None:
    """Refuse fp8 storage, naming the option at fault, where this PyTorch build has no float8 dtype or `device`
    cannot hold and upcast float8 tensors (checked on a one-value tensor, before any weights are read)."""
    if FP8 is None:
        raise InputError(
            f"{input_name}: this PyTorch ({torch.__version__}) has no float8_e4m3fn dtype to store weights in; "
            "install PyTorch 2.1 or newer, or load without fp8 weights", input_name,
        )
    if device is None:
        return
    try:
        torch.zeros(1, dtype=FP8, device=device).to(torch.float32)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"{input_name}: the device {device} cannot hold float8_e4m3fn weights in this PyTorch ({exc}); load "
            "without fp8 weights, or on another device", input_name,
        ) from None


def fp8_scale(weight: torch.Tensor) -> float:
    """A power of two that maps the tensor's largest magnitude to at most 448 (e4m3's largest finite value).

    Per tensor, so small weights use e4m3's normal range instead of its coarse subnormals (|w| < 2^-6 would keep
    at most 2 bits there); a power of two, so that the upcast `w8 * scale` is exact in any dtype and the only
    rounding is the one of the cast to fp8."""
    if weight.is_meta:  # shapes only (the memory estimates): any scale has the same size
        return 1.0
    amax = weight.detach().abs().max().float().item()
    if amax == 0 or not math.isfinite(amax):
        return 1.0
    return 2.0 ** math.ceil(math.log2(amax / FP8_MAX))


class Fp8Weight:
    """What an fp8 layer adds to its torch layer: the weight as e4m3 plus a float32 `weight_scale` buffer (so it
    moves and is saved with the module); the bias stays in the working dtype."""

    weight: nn.Parameter
    weight_scale: torch.Tensor

    def _hold(self, layer: nn.Module) -> None:
        scale = fp8_scale(layer.weight)
        weight = (layer.weight.detach().float() / scale).to(FP8)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = layer.bias
        self.register_buffer("weight_scale", torch.tensor(scale, dtype=torch.float32, device=weight.device))

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight in `dtype` (exact: fp8 values times a power of two are representable in bf16/fp16/fp32)."""
        # One weight-sized temporary, scaled in place.
        return self.weight.to(dtype).mul_(self.weight_scale.to(dtype))

    def _bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.to(dtype)


class Fp8Linear(Fp8Weight, nn.Linear):
    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Fp8Linear":
        fp8 = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        fp8._hold(linear)
        return fp8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized(x.dtype), self._bias(x.dtype))


class Fp8Conv2d(Fp8Weight, nn.Conv2d):
    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "Fp8Conv2d":
        fp8 = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                  padding_mode=conv.padding_mode, device="meta")
        fp8._hold(conv)
        return fp8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.dequantized(x.dtype), self._bias(x.dtype))


_TWINS = {nn.Linear: Fp8Linear.from_linear, nn.Conv2d: Fp8Conv2d.from_conv}


def linear_weight(linear: nn.Linear, dtype: torch.dtype) -> torch.Tensor:
    """The weight a Linear computes with, in `dtype` (for code that slices the matrix instead of calling it)."""
    if isinstance(linear, Fp8Linear):
        return linear.dequantized(dtype)
    return linear.weight


def layers_of(root: nn.Module, kinds: tuple[type[nn.Module], ...] = (nn.Linear,),
              skip: Iterable[nn.Module] = ()) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) of every layer under `root` whose type is exactly one of `kinds` (a subclass,
    e.g. an fp8 layer already, is left alone), except those in `skip`."""
    skipped = {id(m) for m in skip}
    return [(parent, name, child) for parent in root.modules() for name, child in parent.named_children()
            if type(child) in kinds and id(child) not in skipped]


def store_fp8(targets: Iterable[tuple[nn.Module, str, nn.Module]]) -> None:
    """Replace each (parent, attribute, Linear or Conv2d) by its fp8 twin, in place, on the layer's device; one
    layer's float32 temporary at a time."""
    require_fp8()
    for parent, name, layer in targets:
        setattr(parent, name, _TWINS[type(layer)](layer))
