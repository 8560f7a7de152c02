"""The clip loop's contracts: resumable segments, cancel, seeded draw order, Hallo2 drop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hallo_pipeline.config import RegionWeights
from hallo_pipeline.errors import Cancelled, InputError
from hallo_pipeline.hallo.models import RegionMasks
from hallo_pipeline.hallo.sampling.clip_loop import ClipInputs, ClipSampler, SamplerSettings
from hallo_pipeline.hallo.sampling.guided_step import encode_identity
from hallo_pipeline.hallo.vae import LatentCodec
from tests.hallo_pipeline.hallo.tiny import random_net, tiny_config, tiny_vae

SIZE, CLIP = 64, 3


@pytest.fixture(scope="module")
def parts():
    net = random_net(tiny_config(), seed=3)
    codec = LatentCodec(tiny_vae(), decode_batch=2)
    g = torch.Generator().manual_seed(0)
    masks = [RegionMasks(*(torch.rand((SIZE // 8 >> i) ** 2, generator=g) for _ in range(3))) for i in range(4)]
    face_region = torch.zeros(3, SIZE, SIZE)
    face_region[:, 16:48, 20:44] = 1.0
    identity = encode_identity(net, torch.randn(1, 512, generator=g), face_region[None], masks)
    ap = net.config.audioproj
    inputs = ClipInputs(
        identity=identity,
        reference_image=torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1,
        face_region=face_region,
        audio_features=torch.randn(4 * CLIP, ap.window, ap.layers, ap.channels, generator=g),
    )
    return net, codec, inputs


def _settings(**kw) -> SamplerSettings:
    return SamplerSettings(**{"steps": 2, "clip_length": CLIP, "seed": 7, "weights": RegionWeights(1, 1, 1), **kw})


def test_segments_stitch_to_the_uninterrupted_run(parts) -> None:
    net, codec, inputs = parts
    whole = torch.cat([f for f, _ in ClipSampler(net, codec, _settings()).run(inputs)])
    assert whole.shape == (4 * CLIP, 3, SIZE, SIZE)
    first = list(ClipSampler(net, codec, _settings()).run(inputs, range(0, 2)))
    context = first[-1][1]
    assert context.next_clip == 2 and context.frames.shape == (2, 3, SIZE, SIZE)
    # a fresh sampler (another run, another process) continues from the context alone
    second = list(ClipSampler(net, codec, _settings()).run(inputs, range(2, 4), context=context))
    stitched = torch.cat([f for f, _ in first + second])
    torch.testing.assert_close(stitched, whole, rtol=0, atol=1e-6)


def test_segment_needs_the_matching_context(parts) -> None:
    net, codec, inputs = parts
    with pytest.raises(InputError, match="continues clip 0"):
        next(ClipSampler(net, codec, _settings()).run(inputs, range(2, 4)))
    with pytest.raises(InputError, match="goes past the audio's 4 clips"):
        next(ClipSampler(net, codec, _settings()).run(inputs, range(0, 5)))


def test_cancel_stops_mid_clip(parts) -> None:
    net, codec, inputs = parts
    seen = []
    sampler = ClipSampler(net, codec, _settings(), progress=seen.append, should_cancel=lambda: len(seen) >= 3)
    produced = []
    with pytest.raises(Cancelled):
        for frames, _ in sampler.run(inputs):
            produced.append(frames)
    assert len(seen) == 3 and len(produced) == 1  # clip 0 done, clip 1 stopped after one step
    assert [(p.clip, p.step, p.done, p.total) for p in seen] == [(0, 1, 1, 8), (0, 2, 2, 8), (1, 1, 3, 8)]


def test_noise_comes_from_one_seeded_generator_in_clip_order(parts) -> None:
    net, codec, inputs = parts
    traced = {}
    sampler = ClipSampler(net, codec, _settings(motion_drop_rate=0.25), trace=lambda n, t: traced.__setitem__(n, t))
    list(sampler.run(inputs))
    g = torch.Generator().manual_seed(7)
    for c in range(4):
        drop = torch.rand(SIZE, SIZE, generator=g)
        noise = torch.randn(1, 4, CLIP, SIZE // 8, SIZE // 8, generator=g)
        assert torch.equal(traced[f"clip{c}.drop_rand"], drop)
        assert torch.equal(traced[f"clip{c}.initial_noise"], noise)
        keep = traced[f"clip{c}.drop_keep"]
        assert torch.equal(keep, (drop > 0.25) | (inputs.face_region[0] > 0))
        assert keep[16:48, 20:44].all() and 0.6 < keep.float().mean() < 0.9
        motion = traced[f"clip{c}.ref_image"][0, 1:]
        assert (motion[:, :, ~keep] == 0).all(), "dropped pixels become 0 (mid-grey) in both motion frames"


def test_hallo_v1_draws_no_drop_map(parts) -> None:
    net, codec, inputs = parts
    traced = {}
    list(ClipSampler(net, codec, _settings(), trace=lambda n, t: traced.__setitem__(n, t)).run(inputs, range(0, 1)))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(traced["clip0.initial_noise"], torch.randn(1, 4, CLIP, SIZE // 8, SIZE // 8, generator=g))
    assert "clip0.drop_rand" not in traced
    assert torch.equal(traced["clip0.ref_image"][0, 1], inputs.reference_image)


def test_cached_reference_rows_match_the_release_order(parts) -> None:
    from hallo_pipeline.hallo.sampling.guided_step import (
        assemble_reference_layers,
        motion_frame_features,
        reference_image_features,
        reference_layers,
    )

    net, codec, inputs = parts
    latents = torch.randn(3, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(1))
    tokens = inputs.identity.face_tokens
    release = reference_layers(net, latents, tokens, CLIP)
    split = assemble_reference_layers(
        reference_image_features(net, latents[:1], tokens), motion_frame_features(net, latents[1:], tokens), CLIP
    )
    for a, b in zip(release, split):
        # same rows, other batching: at most a rounding flip of the float16 features
        torch.testing.assert_close(a.tokens.tokens.float(), b.tokens.tokens.float(), rtol=2e-3, atol=2e-3)
        torch.testing.assert_close(a.motion.float(), b.motion.float(), rtol=2e-3, atol=2e-3)
        assert torch.equal(a.tokens.index, b.tokens.index)
    # each run on its own copy without rows, so the cached one must compute and keep them itself
    cached_inputs, uncached_inputs = (dataclasses.replace(inputs, image_rows=None) for _ in range(2))
    cached = next(ClipSampler(net, codec, _settings(cache_reference=True)).run(cached_inputs))[0]
    uncached = next(ClipSampler(net, codec, _settings(cache_reference=False)).run(uncached_inputs))[0]
    assert cached_inputs.image_rows is not None and uncached_inputs.image_rows is None
    torch.testing.assert_close(cached, uncached, rtol=0, atol=2e-3)


def test_cancel_stops_inside_a_denoising_step(parts) -> None:
    net, codec, inputs = parts
    checks, steps = [], []
    blocks = len(net.denoising_unet.down_blocks) + 1 + len(net.denoising_unet.up_blocks)

    def should_cancel() -> bool:
        checks.append(1)
        return len(checks) == 4  # the clip's own check, the step's, then inside the UNet

    with pytest.raises(Cancelled):
        list(ClipSampler(net, codec, _settings(), progress=steps.append, should_cancel=should_cancel).run(inputs))
    assert steps == [] and len(checks) == 4 < 2 + blocks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, r"steps 0 is out of range: use 1 to 1000"),
        ({"steps": 1001}, r"steps 1001 is out of range"),
        ({"steps": 2.5}, r"steps must be a whole number"),
        ({"guidance_scale": float("nan")}, r"guidance_scale must be a finite number"),
        ({"seed": 2**64}, r"seed 18446744073709551616 is out of range"),
        ({"clip_length": 0}, r"clip_length 0 is out of range: use 2 to"),
        ({"clip_length": 1}, r"clip_length 1 is out of range"),
        ({"weights": lambda: RegionWeights(lip=1e30)}, r"lip_weight 1e\+30 is out of range: use 0 to 5"),
        ({"weights": lambda: RegionWeights(pose=float("nan"))}, r"pose_weight must be a finite number"),
    ],
)
def test_settings_refuse_what_a_run_cannot_honour(change, message) -> None:
    (key, value), = change.items()
    with pytest.raises(InputError, match=message) as error:
        SamplerSettings(**{"steps": 2, "clip_length": CLIP, key: value() if callable(value) else value})
    assert error.value.input in (key, "guidance_scale", "pose_weight", "lip_weight")


def test_each_step_offers_the_clips_predicted_latents_for_a_preview(parts) -> None:
    net, codec, inputs = parts
    traced, previews = {}, []

    def progress(p) -> None:
        preview = p.preview()
        previews.append((p.clip, p.step, preview.latents.clone(), preview.space))

    sampler = ClipSampler(net, codec, _settings(), progress=progress, trace=lambda n, t: traced.__setitem__(n, t))
    list(sampler.run(inputs, range(0, 1)))
    (_, _, first, space), (_, _, last, _) = previews
    assert space == "sd15" and first.shape == (CLIP, 4, SIZE // 8, SIZE // 8)  # frames first
    # DDIM's x0: after the last step it is the clip's final latents; after the first, not the noisy latents.
    torch.testing.assert_close(last, traced["clip0.final_latents"][0].transpose(0, 1))
    assert not torch.allclose(first, traced["clip0.step0.latents"][0].transpose(0, 1), atol=1e-3)
