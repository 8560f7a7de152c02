"""Runs a `pipeline`-format parity case (Hallo or Hallo2) free-running and teacher-forced."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.parity.conftest import Case


def settings_of(case: Case, **overrides):
    from hallo_pipeline.config import RegionWeights
    from hallo_pipeline.hallo.sampling.clip_loop import SamplerSettings

    j = case.settings
    scale = j["motion_scale"]
    return SamplerSettings(
        steps=j["num_inference_steps"],
        guidance_scale=j["guidance_scale"],
        weights=RegionWeights(pose=scale["pose_weight"], face=scale["face_weight"], lip=scale["lip_weight"]),
        seed=j["seed"],
        clip_length=j["clip_length"],
        motion_drop_rate=j.get("mask_rate", 0.0),
        **overrides,
    )


def clip_inputs_of(case: Case, net):
    from hallo_pipeline.hallo.models import RegionMasks
    from hallo_pipeline.hallo.sampling.clip_loop import ClipInputs
    from hallo_pipeline.hallo.sampling.guided_step import encode_identity

    t = case.tensors
    levels = sorted(int(k.rsplit(".", 1)[1]) for k in t if k.startswith("input.full_mask."))
    masks = [RegionMasks(t[f"input.full_mask.{i}"], t[f"input.face_mask.{i}"], t[f"input.lip_mask.{i}"])
             for i in levels]
    identity = encode_identity(net, t["input.face_embedding"], t["input.face_region"], masks)
    return ClipInputs(identity, t["input.ref_image"], t["input.face_region"], t["input.audio_features"])


@dataclass
class PipelineRun:
    outputs: dict[str, torch.Tensor]  # named like the fixture tensors
    teacher_forced: dict[str, torch.Tensor]  # "clip{c}.step{j}.model_output" / ".latents"


def run_free(case: Case, net, codec, **overrides) -> dict[str, torch.Tensor]:
    from hallo_pipeline.hallo.sampling.clip_loop import ClipSampler

    traced: dict[str, torch.Tensor] = {}
    sampler = ClipSampler(net, codec, settings_of(case, **overrides),
                          trace=lambda name, x: traced.__setitem__(name, x.detach().float().cpu().clone()))
    frames = torch.cat([f for f, _ in sampler.run(clip_inputs_of(case, net))])
    out = {f"debug.{k}": v for k, v in traced.items()}
    clips = case.settings["num_clips"]
    for c in range(clips):
        out[f"expected.initial_noise.{c}"] = traced[f"clip{c}.initial_noise"]
        if f"clip{c}.drop_rand" in traced:
            out[f"expected.drop_rand.{c}"] = traced[f"clip{c}.drop_rand"]
            out[f"expected.drop_keep.{c}"] = traced[f"clip{c}.drop_keep"]
    out["expected.video"] = frames[: case.settings["audio_length_frames"]].transpose(0, 1)
    return out


def run_teacher_forced(case: Case, net, codec) -> dict[str, torch.Tensor]:
    """Each step starts from the fixture's previous latents; each clip from the fixture's frames."""
    from hallo_pipeline.hallo.sampling.guided_step import guided_denoise_step, reference_layers
    from hallo_pipeline.hallo.sampling.scheduler import make_scheduler

    t = case.tensors
    s = settings_of(case)
    inputs = clip_inputs_of(case, net)
    scheduler = make_scheduler(s.steps, case.settings.get("scheduler"))
    video = t["expected.video"].transpose(0, 1)  # (T, 3, H, W)
    f = s.clip_length
    out = {}
    for c in range(case.settings["num_clips"]):
        if c == 0:
            motion = inputs.reference_image[None].expand(2, -1, -1, -1)
        else:
            motion = video[c * f - 2 : c * f] * 2 - 1
        keep = t.get(f"expected.drop_keep.{c}")
        if keep is not None:
            motion = motion * keep.bool()
        latents_ref = codec.encode(torch.cat([inputs.reference_image[None], motion]))
        reference = reference_layers(net, latents_ref, inputs.identity.face_tokens, f)
        audio_tokens = net.audioproj(inputs.audio_features[c * f : (c + 1) * f][None])
        latents = t[f"expected.initial_noise.{c}"]
        for j, step_t in enumerate(scheduler.timesteps):
            if j > 0:
                latents = t[f"debug.clip{c}.step{j - 1}.latents"]
            guided = guided_denoise_step(net, latents, step_t, inputs.identity, audio_tokens, reference,
                                         s.guidance_scale, s.weights).guided
            out[f"clip{c}.step{j}.model_output"] = guided
            out[f"clip{c}.step{j}.latents"] = scheduler.step(guided, step_t, latents, eta=0.0).prev_sample
    return out
