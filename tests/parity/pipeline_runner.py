"""Runs a `pipeline`-format parity case (Hallo or Hallo2) free-running and teacher-forced."""

from __future__ import annotations

import torch

from hallo_pipeline.testing.hallo_cases import clip_inputs, run_pipeline, sampler_settings
from tests.parity.conftest import Case


def run_free(case: Case, net, codec, **overrides) -> dict[str, torch.Tensor]:
    return run_pipeline(net, codec, case.tensors, case.settings, **overrides)


def run_teacher_forced(case: Case, net, codec) -> dict[str, torch.Tensor]:
    """Each step starts from the fixture's previous latents; each clip from the fixture's frames."""
    from hallo_pipeline.hallo.sampling.guided_step import guided_denoise_step, reference_layers
    from hallo_pipeline.hallo.sampling.scheduler import make_scheduler

    t = case.tensors
    s = sampler_settings(case.settings)
    inputs = clip_inputs(net, t)
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
