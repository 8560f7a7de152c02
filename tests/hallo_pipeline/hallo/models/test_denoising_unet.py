"""Release semantics of the denoiser that the parity numbers depend on, checked one by one."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.config import RegionWeights
from hallo_pipeline.hallo.models import RegionMasks
from hallo_pipeline.hallo.sampling.guided_step import encode_identity, guided_denoise_step, reference_layers
from tests.hallo_pipeline.hallo.tiny import random_net, tiny_config

FRAMES, SIZE = 3, 16  # an odd clip length: the reference-row alternation follows the CFG batch row


@pytest.fixture(scope="module")
def net():
    return random_net(tiny_config(), seed=1)


def _inputs(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = net.config
    masks = [
        RegionMasks(*(torch.rand(1, (SIZE >> i) ** 2, generator=g) for _ in range(3)))
        for i in range(len(cfg.unet.block_out_channels))
    ]
    identity = encode_identity(net, torch.randn(1, 512, generator=g), torch.rand(1, 3, 8 * SIZE, 8 * SIZE, generator=g),
                               masks)
    ap = cfg.audioproj
    audio = net.audioproj(torch.randn(1, FRAMES, ap.window, ap.layers, ap.channels, generator=g))
    reference = reference_layers(net, torch.randn(3, 4, SIZE, SIZE, generator=g), identity.face_tokens, FRAMES)
    latents = torch.randn(1, 4, FRAMES, SIZE, SIZE, generator=g)
    return latents, identity, audio, reference


def _run(net, latents, identity, audio, reference, weights=RegionWeights(0.7, 1.3, 2.0)):  # noqa: B008 - frozen dataclass
    return guided_denoise_step(net, latents, 500, identity, audio, reference, 3.5, weights)


def test_guidance_combines_the_two_halves(net) -> None:
    out = _run(net, *_inputs(net))
    torch.testing.assert_close(out.guided, out.uncond + 3.5 * (out.cond - out.uncond))
    assert out.guided.shape == (1, 4, FRAMES, SIZE, SIZE)


def test_plain_block_motion_modules_are_not_run(net) -> None:
    inputs = _inputs(net)
    base = _run(net, *inputs).guided
    unet = net.denoising_unet
    plain = [b for b in (*unet.down_blocks, *unet.up_blocks) if not b.has_attention]
    assert plain, "the tiny config must have plain blocks"
    saved = {}
    for block in plain:
        for name, p in block.motion_modules.named_parameters():
            saved[(id(block), name)] = p.clone()
            p.add_(1.0)
    try:
        assert torch.equal(_run(net, *inputs).guided, base)
    finally:
        for block in plain:
            for name, p in block.motion_modules.named_parameters():
                p.copy_(saved[(id(block), name)])
    with torch.no_grad():
        p = unet.down_blocks[0].motion_modules[0].temporal_transformer.proj_out.bias
        p.add_(1.0)
        try:
            assert not torch.allclose(_run(net, *inputs).guided, base)
        finally:
            p.sub_(1.0)


def test_motion_frames_are_prepended_in_order(net) -> None:
    latents, identity, audio, reference = _inputs(net)
    base = _run(net, latents, identity, audio, reference).guided
    swapped = [type(r)(tokens=r.tokens, motion=r.motion.flip(1)) for r in reference]
    assert (_run(net, latents, identity, audio, swapped).guided - base).abs().max() > 1e-3


def test_reference_tokens_reach_the_cond_half_only(net) -> None:
    latents, identity, audio, reference = _inputs(net)
    base = _run(net, latents, identity, audio, reference)
    changed = [
        type(r)(tokens=type(r.tokens)(tokens=r.tokens.tokens.flip(0), index=r.tokens.index), motion=r.motion)
        for r in reference
    ]
    out = _run(net, latents, identity, audio, changed)
    assert torch.equal(out.uncond, base.uncond)
    assert (out.cond - base.cond).abs().max() > 1e-3


def test_reference_rows_alternate_with_the_cfg_batch_row() -> None:
    net = random_net(tiny_config(), seed=2)
    face_tokens = torch.randn(2, 4, net.config.unet.cross_attention_dim)
    layers = reference_layers(net, torch.randn(3, 4, 8, 8), face_tokens, frames=3)
    # cond rows are CFG batch rows 3, 4, 5 -> bank rows 3, 0, 3 -> our two-row table [row 0, row 3]
    assert layers[0].tokens.index.tolist() == [1, 0, 1]
    assert layers[0].tokens.tokens.dtype == torch.float16
    assert layers[0].motion.shape[:2] == (2, 2)


def test_region_weight_acts_only_inside_its_mask() -> None:
    net = random_net(tiny_config(), seed=1)
    for module in net.denoising_unet.modules():
        if hasattr(module, "zero_conv_lip"):
            module.zero_conv_lip.bias.zero_()  # outside its mask a region only adds w * bias
    latents, identity, audio, reference = _inputs(net)
    lip_off = [RegionMasks(m.full, m.face, torch.zeros_like(m.lip)) for m in identity.masks]
    no_lip = type(identity)(identity.face_tokens, identity.face_features, lip_off)
    a = _run(net, latents, no_lip, audio, reference, RegionWeights(0.7, 1.3, 2.0)).guided
    b = _run(net, latents, no_lip, audio, reference, RegionWeights(0.7, 1.3, 0.0)).guided
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    c = _run(net, latents, identity, audio, reference, RegionWeights(0.7, 1.3, 0.0)).guided
    d = _run(net, latents, identity, audio, reference, RegionWeights(0.7, 1.3, 2.0)).guided
    assert (c - d).abs().max() > 1e-3


def test_uncond_half_ignores_audio_and_face(net) -> None:
    latents, identity, audio, reference = _inputs(net)
    base = _run(net, latents, identity, audio, reference)
    other = _run(net, latents, identity, audio * 0 + 1.0, reference)
    assert torch.equal(other.uncond, base.uncond)
    assert (other.cond - base.cond).abs().max() > 1e-3


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_no_guidance_runs_the_conditional_half_alone(net, scale) -> None:
    latents, identity, audio, reference = _inputs(net)
    batches = []
    hook = net.denoising_unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        single = guided_denoise_step(net, latents, 500, identity, audio, reference, scale, RegionWeights())
    finally:
        hook.remove()
    assert batches == [1]  # one forward of one clip, not the two CFG halves
    assert single.uncond is None
    both = guided_denoise_step(net, latents, 500, identity, audio, reference, 3.5, RegionWeights())
    torch.testing.assert_close(single.guided, both.cond, rtol=1e-4, atol=1e-5)


def test_between_blocks_is_called_inside_the_forward(net) -> None:
    latents, identity, audio, reference = _inputs(net)
    calls = []
    guided_denoise_step(net, latents, 500, identity, audio, reference, 3.5, RegionWeights(),
                        between_blocks=lambda: calls.append(1))
    blocks = len(net.denoising_unet.down_blocks) + 1 + len(net.denoising_unet.up_blocks)
    assert len(calls) == blocks
