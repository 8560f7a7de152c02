"""The Hallo parity set's `denoise_step` and `pipeline` cases run through our networks, for the parity tests and the
fp8 drift benchmark (`../shared/parity/README.md` names the tensors). A case is its JSON settings and its tensors."""

from __future__ import annotations

from collections.abc import Mapping

import torch

Tensors = Mapping[str, torch.Tensor]


def region_masks(tensors: Tensors) -> list:
    """The case's `RegionMasks`, one per resolution level."""
    from ..hallo.models import RegionMasks

    t = tensors
    levels = sorted(int(k.rsplit(".", 1)[1]) for k in t if k.startswith("input.full_mask."))
    return [RegionMasks(t[f"input.full_mask.{i}"], t[f"input.face_mask.{i}"], t[f"input.lip_mask.{i}"])
            for i in levels]


def run_denoise_step(net, tensors: Tensors, settings: dict) -> dict[str, torch.Tensor]:
    """One guided step of the `denoise_step` case; our outputs, named like its `expected.*` / `debug.*` tensors."""
    from ..config import RegionWeights
    from ..hallo.sampling.guided_step import encode_identity, guided_denoise_step, reference_layers

    frames = tensors["input.noisy_latents"].shape[2]
    identity = encode_identity(net, tensors["input.face_embedding"], tensors["input.face_region"],
                               region_masks(tensors))
    audio_tokens = net.audioproj(tensors["input.audio_features"].to(next(net.audioproj.parameters()).dtype))
    reference = reference_layers(net, tensors["input.ref_latents"], identity.face_tokens, frames)
    scale = settings["motion_scale"]
    weights = RegionWeights(pose=scale["pose_weight"], face=scale["face_weight"], lip=scale["lip_weight"])
    step = guided_denoise_step(
        net, tensors["input.noisy_latents"], tensors["input.timestep"], identity, audio_tokens, reference,
        settings["guidance_scale"], weights,
    )
    out = {
        "expected.noise_pred": step.guided,
        "expected.noise_pred_cond": step.cond,
        "expected.noise_pred_uncond": step.uncond,
        "debug.audioproj": audio_tokens,
        "debug.imageproj_uncond": identity.face_tokens[:1],
        "debug.imageproj_cond": identity.face_tokens[1:],
        "debug.ref_unet_encoder_hidden_states": identity.face_tokens,
        "debug.face_locator": identity.face_features.unsqueeze(2).expand(-1, -1, frames, -1, -1),
    }
    for name, layer in zip(net.reference_unet.transformer_block_names(), reference):
        rows = [layer.tokens.tokens[:1], layer.motion[0], layer.tokens.tokens[1:], layer.motion[1]]
        out[f"debug.ref_bank.{name}"] = torch.cat(rows)  # rows [r, m1, m2, r, m1, m2]
    return out


def sampler_settings(settings: dict, **overrides):
    """The `SamplerSettings` of a `pipeline`-format case (Hallo or Hallo2)."""
    from ..config import RegionWeights
    from ..hallo.sampling.clip_loop import SamplerSettings

    scale = settings["motion_scale"]
    return SamplerSettings(
        steps=settings["num_inference_steps"],
        guidance_scale=settings["guidance_scale"],
        weights=RegionWeights(pose=scale["pose_weight"], face=scale["face_weight"], lip=scale["lip_weight"]),
        seed=settings["seed"],
        clip_length=settings["clip_length"],
        motion_drop_rate=settings.get("mask_rate", 0.0),
        **overrides,
    )


def clip_inputs(net, tensors: Tensors):
    from ..hallo.sampling.clip_loop import ClipInputs
    from ..hallo.sampling.guided_step import encode_identity

    t = tensors
    identity = encode_identity(net, t["input.face_embedding"], t["input.face_region"], region_masks(t))
    return ClipInputs(identity, t["input.ref_image"], t["input.face_region"], t["input.audio_features"])


def run_pipeline(net, codec, tensors: Tensors, settings: dict, **overrides) -> dict[str, torch.Tensor]:
    """A `pipeline`-format case free-running through `ClipSampler`; its traced tensors (float32, on the host) and
    the video, named like the case's `expected.*` / `debug.*` tensors. `overrides`: other `SamplerSettings`."""
    from ..hallo.sampling.clip_loop import ClipSampler

    traced: dict[str, torch.Tensor] = {}
    sampler = ClipSampler(net, codec, sampler_settings(settings, **overrides),
                          trace=lambda name, x: traced.__setitem__(name, x.detach().float().cpu().clone()))
    frames = torch.cat([f for f, _ in sampler.run(clip_inputs(net, tensors))])
    out = {f"debug.{k}": v for k, v in traced.items()}
    for c in range(settings["num_clips"]):
        out[f"expected.initial_noise.{c}"] = traced[f"clip{c}.initial_noise"]
        if f"clip{c}.drop_rand" in traced:
            out[f"expected.drop_rand.{c}"] = traced[f"clip{c}.drop_rand"]
            out[f"expected.drop_keep.{c}"] = traced[f"clip{c}.drop_keep"]
    out["expected.video"] = frames[: settings["audio_length_frames"]].transpose(0, 1)
    return out
