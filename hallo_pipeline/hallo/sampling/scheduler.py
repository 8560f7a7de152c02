"""The release's DDIM settings (SPEC §7), built on diffusers' `DDIMScheduler`."""

from __future__ import annotations

from typing import Any, Mapping

# v-prediction, linear betas, zero-terminal-SNR rescale, trailing spacing: what Hallo was trained
# and sampled with. diffusers steps from t to t - 1000 // steps (not to the next schedule entry).
RELEASE_DDIM = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "set_alpha_to_one": True,
}


def make_scheduler(steps: int, settings: Mapping[str, Any] | None = None):
    """A DDIM scheduler with `steps` inference steps (eta 0 is passed at each step)."""
    from diffusers import DDIMScheduler

    if steps < 1:
        raise ValueError(f"steps must be at least 1 (got {steps})")
    scheduler = DDIMScheduler(**{**RELEASE_DDIM, **(settings or {})})
    scheduler.set_timesteps(steps)
    return scheduler
