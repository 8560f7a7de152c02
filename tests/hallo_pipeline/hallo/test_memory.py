"""fp8 weight storage of the Hallo networks (hallo/memory.py) on a random tiny net: what is converted, that the
converted net computes exactly as an fp32 net with the rounded weights, and how far that moves a denoising step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hallo_pipeline.fp8 import FP8, Fp8Weight
from hallo_pipeline.hallo.memory import fp8_targets, store_fp8
from tests.hallo_pipeline.hallo.models.test_denoising_unet import _inputs, _run
from tests.hallo_pipeline.hallo.tiny import random_net, tiny_config

KINDS = (nn.Linear, nn.Conv2d)


@pytest.fixture(scope="module")
def net():
    return random_net(tiny_config(), seed=1)


@pytest.fixture(scope="module")
def fp8_net(net):
    return store_fp8(copy.deepcopy(net))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_store_fp8_converts_the_unets_layers_but_their_ends(net, fp8_net) -> None:
    found = {id(layer) for _, _, layer in fp8_targets(net)}
    targets = {name for name, m in net.named_modules() if id(m) in found}
    ends = {"reference_unet.conv_in", "denoising_unet.conv_in", "denoising_unet.conv_out",
            *(f"{unet}_unet.time_embedding.linear_{i}" for unet in ("reference", "denoising") for i in (1, 2))}
    in_unets = {name for name, m in net.named_modules() if type(m) in KINDS and name.split(".")[0].endswith("_unet")}
    assert targets == in_unets - ends
    for name in ("down_blocks.0.motion_modules.0.temporal_transformer.proj_in",
                 "down_blocks.0.audio_modules.0.transformer_blocks.0.zero_conv_lip", "mid_block.resnets.0.conv1",
                 "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"):
        assert f"denoising_unet.{name}" in targets, name
    original = dict(net.named_modules())
    for name, module in fp8_net.named_modules():
        if name in targets:
            assert isinstance(module, Fp8Weight) and module.weight.dtype == FP8, name
        elif type(original.get(name)) in KINDS:  # the ends, the FaceLocator and the projections: untouched
            assert type(module) is type(original[name]) and torch.equal(module.weight, original[name].weight), name
    names = set(fp8_net.state_dict())  # every checkpoint key is still there, each converted layer adds its scale
    assert set(net.state_dict()) <= names and sum(n.endswith(".weight_scale") for n in names) == len(targets)


def test_the_fp8_net_computes_as_the_fp32_net_with_the_rounded_weights(net, fp8_net) -> None:
    """Storage only: upcast per layer, nothing else changes (same kernels, same dtype, same order)."""
    rounded = copy.deepcopy(net)
    layers = dict(fp8_net.named_modules())
    for name, module in rounded.named_modules():
        if isinstance(layers[name], Fp8Weight):
            module.weight.copy_(layers[name].dequantized(torch.float32))
    expected, out = _run(rounded, *_inputs(rounded)), _run(fp8_net, *_inputs(fp8_net))
    for half in ("uncond", "cond", "guided"):
        assert torch.equal(getattr(out, half), getattr(expected, half)), half


def test_fp8_moves_a_step_no_more_than_noise_of_the_same_size(net, fp8_net) -> None:
    """The bound: e4m3 rounding is an unbiased error of about 2.7 % rms per weight here (3 mantissa bits), so it
    may move the output as much as independent noise of that rms on the same weights does, and no more (2x
    margin: one draw each). How much this random net amplifies it is the net's own business (the parity
    networks: benchmarks/results/hallo-fp8-drift-cpu.md)."""
    reference = _run(net, *_inputs(net)).cond
    drift = _relative(_run(fp8_net, *_inputs(fp8_net)).cond, reference)
    noisy = copy.deepcopy(net)
    g = torch.Generator().manual_seed(0)
    layers = dict(fp8_net.named_modules())
    error = total = 0.0
    for name, module in noisy.named_modules():
        if isinstance(layers[name], Fp8Weight):
            rounding = layers[name].dequantized(torch.float32) - module.weight
            error, total = error + rounding.pow(2).sum(), total + module.weight.pow(2).sum()
    epsilon = (error / total).sqrt().item()
    assert 0.01 < epsilon < 2.0**-4  # 3 bits: the relative rounding of a weight is at most 2^-4
    for name, module in noisy.named_modules():
        if isinstance(layers[name], Fp8Weight):
            module.weight.add_(module.weight * epsilon * torch.randn(module.weight.shape, generator=g))
    control = _relative(_run(noisy, *_inputs(noisy)).cond, reference)
    assert 0 < drift < 2 * control, (drift, control)


def test_a_pipeline_loaded_with_fp8_holds_its_unets_in_fp8(tiny_model_folder) -> None:
    from hallo_pipeline.families import load_pipeline

    pipeline = load_pipeline(tiny_model_folder, fp8=True, device="cpu", dtype="fp32")
    net = pipeline.net
    converted = [m for m in net.modules() if isinstance(m, Fp8Weight)]
    assert converted and fp8_targets(net) == []  # every target converted (fp8 layers are no longer targets)
    assert all(m.weight.dtype == FP8 for m in converted)
    assert net.denoising_unet.conv_in.weight.dtype == pipeline.dtype == torch.float32  # the compute dtype


@pytest.mark.parametrize("value", ["yes", 1])
def test_fp8_must_be_true_or_false(tiny_model_folder, value) -> None:
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.families import load_pipeline

    with pytest.raises(InputError, match=f"fp8 must be true or false, got {value!r}") as err:
        load_pipeline(tiny_model_folder, fp8=value)
    assert err.value.input == "fp8"


def test_without_a_float8_dtype_fp8_is_refused_before_loading(tiny_model_folder, monkeypatch) -> None:
    from hallo_pipeline import fp8
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.families import load_pipeline
    from hallo_pipeline.hallo import checkpoint

    monkeypatch.setattr(fp8, "FP8", None)
    monkeypatch.setattr(checkpoint, "load_net", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(InputError, match="fp8: this PyTorch .* has no float8_e4m3fn dtype"):
        load_pipeline(tiny_model_folder, fp8=True)
