"""Hallo3's sampler: VP-SDE DPM-Solver++(2M) over zero-terminal-SNR tables, v-prediction (SPEC §7).

    schedule = Schedule.build(50)
    latent = sample(guided_v_prediction(dit_velocities), shape, schedule, SeededNoise(seed), device=device)

`dit_velocities(x, timestep)` returns the DiT's (uncond, cond) v-predictions (§8); `sample` returns the
last step's x0 prediction. Any `predict_x0(x, step)` can stand in for the model (the tests use recorded
predictions and analytic models).

Hand-written, not diffusers' `DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")`, because
the release differs from it in ways that change every output value (measured on the `schedule` fixture):
  * the solver's sqrt(alpha_cumprod) table is rescaled to zero SNR over the n-step *subset* of timesteps,
    not over all 1000 (diffusers' alpha_t differ from the release's by up to 6.2e-4 for 50 steps), while
    the denoiser's c_skip / c_out come from the 1000-entry table, *snapped* to its nearest entry (index
    t - 1 instead of t for t <= 219);
  * each middle step draws two noises and uses the second (diffusers draws one);
  * the terminal alpha is exactly 0 (diffusers clamps it to 2**-12 to keep its sigmas finite).
All table arithmetic is float32 in the release's order of operations, which reproduces the fixture's
tables bit for bit; the sampler state and the x0 predictions are float32 whatever the model's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import InputError
from .config import GUIDANCE, STEPS
from .noise import NoiseSource

TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012  # "scaled linear": linear in sqrt(beta)
GUIDANCE_SCALE = GUIDANCE.default


def train_betas() -> torch.Tensor:
    """(1000,) float64 betas of training."""
    return torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2


def train_alphas_cumprod() -> torch.Tensor:
    """(1000,) float64 cumulative products of 1 - beta."""
    return torch.cumprod(1.0 - train_betas(), dim=0)


def _rescale_to_zero_snr(sqrt_alphas: torch.Tensor) -> torch.Tensor:
    """Shift and scale so that the last entry is 0 and the first unchanged; the factor is
    formed first, as in the release (bit-exact in float32)."""
    first, last = sqrt_alphas[0], sqrt_alphas[-1]
    return (sqrt_alphas - last) * (first / (first - last))


def denoiser_table() -> torch.Tensor:
    """(1000,) float32 sqrt(alpha_cumprod) rescaled over all timesteps; index = timestep. The
    denoiser snaps the solver's alpha to this table for c_skip / c_out."""
    return _rescale_to_zero_snr(train_alphas_cumprod().to(torch.float32).sqrt())


def step_timesteps(steps: int) -> torch.Tensor:
    """(steps,) int64 timesteps in sampling order (999, 979, ..., 19 for 50): numpy's
    `linspace(999, 0, steps, endpoint=False)` truncated to integers, as the release spaces them."""
    STEPS.check(steps)
    spaced = np.linspace(TRAIN_TIMESTEPS - 1, 0, steps, endpoint=False).astype(np.int64)
    return torch.from_numpy(spaced)


def solver_alphas(steps: int) -> torch.Tensor:
    """(steps + 1,) float32 A_0 .. A_n: sqrt(alpha_cumprod) at the sampling timesteps, rescaled to zero SNR
    over this subset (QUIRK, SPEC §7.1: so A_0 = 0 at t = 999), then 1.0 appended for the clean end."""
    timesteps = step_timesteps(steps)  # descending
    subset = train_alphas_cumprod().to(torch.float32).sqrt()[timesteps.flip(0)]  # ascending timesteps
    rescaled = _rescale_to_zero_snr(subset).flip(0)
    return torch.cat([rescaled, torch.ones(1, dtype=torch.float32)])


def half_log_snr(alpha: torch.Tensor) -> torch.Tensor:
    """lambda = log(alpha / sigma) with sigma = sqrt(1 - alpha^2); -inf at alpha = 0, +inf at 1. Formed
    through alpha^2 / (1 - alpha^2) like the release: other algebraically equal forms differ from its
    float32 values by up to 4e-6 in r."""
    squared = alpha**2
    return (squared / (1 - squared)).sqrt().log()


class Step(NamedTuple):
    """What the model needs at step `index` of a run."""

    index: int
    timestep: int  # fed to the DiT (the n-step table's, not the snapped index)
    alpha: float  # the solver's sqrt(alpha_cumprod) (unsnapped)
    c_skip: float  # x0 = c_skip * x + c_out * v, from the snapped 1000-table entry
    c_out: float


@dataclass(frozen=True)
class Schedule:
    """Every table of an n-step run, float32 (IEEE inf / nan where a quantity is undefined: h at the
    first and last step, r at the first, the second-order weights at the last)."""

    timesteps: torch.Tensor  # (n,) int64, sampling order
    alphas: torch.Tensor  # (n + 1,) A_0 = 0 .. A_n = 1
    snapped_index: torch.Tensor  # (n,) int64: nearest 1000-table entry to A_i
    c_skip: torch.Tensor  # (n,)
    c_out: torch.Tensor  # (n,)
    h: torch.Tensor  # (n,) lambda(A_{i+1}) - lambda(A_i)
    r: torch.Tensor  # (n,) (lambda(A_i) - lambda(A_{i-1})) / h
    m1: torch.Tensor  # (n,) weight of x
    m2: torch.Tensor  # (n,) weight of the x0 prediction (subtracted)
    sigma: torch.Tensor  # (n,) weight of the noise
    w_now: torch.Tensor  # (n,) second order: D' = w_now * D_i - w_prev * D_{i-1}
    w_prev: torch.Tensor  # (n,)

    @classmethod
    def build(cls, steps: int = STEPS.default) -> "Schedule":
        timesteps = step_timesteps(steps)
        alphas = solver_alphas(steps)
        table = denoiser_table()
        a, a_next = alphas[:-1], alphas[1:]
        a_prev = torch.cat([torch.full((1,), float("nan")), alphas[:-2]])
        # QUIRK (SPEC §7.3): c_skip / c_out use the nearest 1000-table entry, not the entry at the timestep.
        snapped = (a[:, None] - table[None, :]).abs().argmin(dim=1)
        c_skip = table[snapped]
        lam, lam_next, lam_prev = half_log_snr(a), half_log_snr(a_next), half_log_snr(a_prev)
        h = lam_next - lam
        r = (lam - lam_prev) / h
        var, var_next = 1 - a**2, 1 - a_next**2
        return cls(
            timesteps=timesteps,
            alphas=alphas,
            snapped_index=snapped,
            c_skip=c_skip,
            c_out=-(1 - c_skip**2).sqrt(),
            h=h,
            r=r,
            m1=(var_next / var) ** 0.5 * (-h).exp(),
            m2=(-2 * h).expm1() * a_next,
            sigma=var_next**0.5 * (1 - (-2 * h).exp()) ** 0.5,
            w_now=1 + 1 / (2 * r),
            w_prev=1 / (2 * r),
        )

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    def step(self, index: int) -> Step:
        return Step(
            index, int(self.timesteps[index]), float(self.alphas[index]), float(self.c_skip[index]),
            float(self.c_out[index]),
        )


PredictX0 = Callable[[torch.Tensor, Step], torch.Tensor]


def v_prediction(velocity: Callable[[torch.Tensor, int], torch.Tensor]) -> PredictX0:
    """x0 = c_skip * x + c_out * v (c_in = 1) from `velocity(x, timestep)`, e.g. a DiT without guidance,
    or an already guided v (equal to `guided_v_prediction` up to float32 rounding: both CFG halves share
    c_skip and c_out)."""

    def predict_x0(x: torch.Tensor, step: Step) -> torch.Tensor:
        v = velocity(x, step.timestep).to(torch.float32)
        return v * step.c_out + x * step.c_skip

    return predict_x0


def guided_v_prediction(
    velocities: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]], scale: float = GUIDANCE_SCALE
) -> PredictX0:
    """Classifier-free guidance the release's way (SPEC §8): `velocities(x, timestep)` gives the DiT's
    (uncond, cond) v; each is turned into x0, then x0_u + scale * (x0_c - x0_u). Guiding v first is the
    same in exact arithmetic; this order reproduces the release's float32 values bit for bit."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise InputError(f"cfg must be a finite number, got {scale!r}; Hallo3 uses {GUIDANCE_SCALE}", "cfg")

    def predict_x0(x: torch.Tensor, step: Step) -> torch.Tensor:
        v_uncond, v_cond = velocities(x, step.timestep)
        x0_uncond = v_uncond.to(torch.float32) * step.c_out + x * step.c_skip
        x0_cond = v_cond.to(torch.float32) * step.c_out + x * step.c_skip
        return x0_uncond + (x0_cond - x0_uncond) * scale

    return predict_x0


@torch.no_grad()
def sample(
    predict_x0: PredictX0,
    shape: Sequence[int],
    schedule: Schedule,
    noise: NoiseSource,
    *,
    device: torch.device | str = "cpu",
    callback: Callable[[Step, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the sampler from fresh noise; returns the last step's x0 prediction (float32, on `device`).

    Draws, in the release's order (SPEC §7.4): the initial noise, one noise at step 0, two at each
    middle step (the first belongs to a first-order update the release computes and discards), none at
    the last. `callback(step, x, denoised)` is called after each model call with the state that entered
    the step (for progress, cancelling by raising, or inspection).
    """
    device = torch.device(device)
    shape = tuple(int(s) for s in shape)

    def draw() -> torch.Tensor:
        return noise.randn(shape).to(device=device, dtype=torch.float32)

    x = draw()
    previous = None
    last = schedule.steps - 1
    for index in range(schedule.steps):
        step = schedule.step(index)
        denoised = predict_x0(x, step).to(torch.float32)
        if callback is not None:
            callback(step, x, denoised)
        if index == last:
            return denoised
        if index == 0:
            # A_0 = 0: lambda = -inf, so m1 = 0 and this is a plain first-order (DDPM-like) step.
            target = denoised
        else:
            draw()  # the discarded first-order update's noise: drawn only to keep the release's stream
            # At step 1, r = +inf (lambda(A_0) = -inf) makes w_prev = 0: first order in effect.
            target = denoised * float(schedule.w_now[index]) - previous * float(schedule.w_prev[index])
        m1, m2, sigma = (float(t[index]) for t in (schedule.m1, schedule.m2, schedule.sigma))
        x = x * m1 - target * m2 + draw() * sigma
        previous = denoised
    raise AssertionError("unreachable: the loop returns at the last step")
