"""The Hallo3 sampler on analytic models: its tables' defining properties, the update rule of SPEC §7.2
against a float64 transcription of the spec, its draw order, and that it samples a known distribution."""

from __future__ import annotations

import math

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo3.noise import ReplayedNoise, SeededNoise
from hallo_pipeline.hallo3.sampler import (
    GUIDANCE_SCALE,
    Schedule,
    denoiser_table,
    guided_v_prediction,
    sample,
    solver_alphas,
    step_timesteps,
    train_alphas_cumprod,
    v_prediction,
)


class CountingNoise(SeededNoise):
    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.shapes: list[tuple[int, ...]] = []

    def randn(self, shape):
        self.shapes.append(tuple(shape))
        return super().randn(shape)


@pytest.mark.parametrize("steps", [1, 2, 4, 50, 333, 1000])
def test_timesteps_are_distinct_and_descend_from_999(steps):
    t = step_timesteps(steps)
    assert t.shape == (steps,) and t.dtype == torch.int64
    assert int(t[0]) == 999 and int(t[-1]) >= 0
    assert bool((t[:-1] > t[1:]).all())
    assert int(t[-1]) <= 999 / steps  # the last one is within one spacing of 0


def test_fifty_steps_are_every_twentieth_timestep():
    assert step_timesteps(50).tolist() == list(range(999, 0, -20))


@pytest.mark.parametrize("steps", [0, -1, 1001, 2.5, True])
def test_step_count_is_checked(steps):
    with pytest.raises(InputError, match="steps"):
        Schedule.build(steps)


def test_zero_snr_tables_end_at_zero_and_keep_their_start():
    clean = train_alphas_cumprod().to(torch.float32).sqrt()
    table = denoiser_table()
    # the rescale keeps the first entry up to float32 rounding
    assert table[-1] == 0 and table[0] == pytest.approx(float(clean[0]), rel=1e-6)
    assert bool((table[:-1] > table[1:]).all())
    for steps in (4, 50):
        a = solver_alphas(steps)
        first_timestep = int(step_timesteps(steps)[-1])
        assert a.shape == (steps + 1,)
        assert a[0] == 0 and a[-1] == 1 and a[-2] == pytest.approx(float(clean[first_timestep]), rel=1e-6)
        assert bool((a[:-1] < a[1:]).all())


def test_snapping_picks_the_nearest_entry_one_below_the_timestep_up_to_219():
    schedule = Schedule.build(50)
    table = denoiser_table()
    a = schedule.alphas[:-1]
    distances = (a[:, None] - table[None, :]).abs()
    chosen = distances.gather(1, schedule.snapped_index[:, None])[:, 0]
    assert torch.equal(chosen, distances.min(dim=1).values)
    expected = [t - 1 if t <= 219 else t for t in schedule.timesteps.tolist()]
    assert schedule.snapped_index.tolist() == expected
    assert torch.equal(schedule.c_skip, table[schedule.snapped_index])
    assert torch.allclose(schedule.c_skip**2 + schedule.c_out**2, torch.ones(50))
    assert bool((schedule.c_out <= 0).all())


def _reference_run(predict, shape, steps: int, draws: list[torch.Tensor]) -> torch.Tensor:
    """SPEC §7.2 and §7.4 transcribed in float64, with its special cases written out."""
    a_table = solver_alphas(steps).double().tolist()
    lam = [(-math.inf if a == 0 else math.inf if a == 1 else math.log(a / math.sqrt(1 - a * a))) for a in a_table]
    draws = iter(d.double() for d in draws)
    x = next(draws).reshape(shape)
    previous = None
    for i in range(steps):
        denoised = predict(x, i)
        if i == steps - 1:
            return denoised
        a, a_next = a_table[i], a_table[i + 1]
        h = lam[i + 1] - lam[i]
        m2 = math.expm1(-2 * h) * a_next
        sigma = math.sqrt(1 - a_next**2) * math.sqrt(-math.expm1(-2 * h))
        if i == 0:  # a = 0: lambda = -inf, h = +inf
            m1, m2, sigma = 0.0, -a_next, math.sqrt(1 - a_next**2)
            x = m1 * x - m2 * denoised + sigma * next(draws)
        else:
            m1 = math.sqrt((1 - a_next**2) / (1 - a**2)) * math.exp(-h)
            next(draws)  # epsilon_1 of the discarded first-order update
            if i == 1:  # r = +inf: D' = D
                blended = denoised
            else:
                r = (lam[i] - lam[i - 1]) / h
                blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
            x = m1 * x - m2 * blended + sigma * next(draws)
        previous = denoised
    raise AssertionError


@pytest.mark.parametrize("steps", [1, 2, 3, 6])
def test_update_rule_matches_the_spec(steps):
    shape = (2, 3, 5)
    draws = [torch.randn(shape, generator=torch.Generator().manual_seed(100 + k)) for k in range(2 * steps)]
    needed = 1 if steps == 1 else 2 * steps - 2

    def model(x, i):  # an analytic "network": depends on the state and the step
        return 0.3 * x + 0.1 * (i + 1)

    ours = sample(lambda x, step: model(x, step.index), shape, Schedule.build(steps), ReplayedNoise(draws[:needed]))
    expected = _reference_run(model, shape, steps, draws[:needed])
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("steps, draws", [(1, 1), (2, 2), (3, 4), (50, 98)])
def test_draw_order(steps, draws):
    noise = CountingNoise()
    shape = (1, 2, 4)
    sample(lambda x, step: torch.zeros_like(x), shape, Schedule.build(steps), noise)
    assert noise.shapes == [shape] * draws


def test_callback_sees_each_step_in_order_and_can_stop_the_run():
    schedule = Schedule.build(5)
    seen = []

    def callback(step, x, denoised):
        seen.append((step.index, step.timestep, step.alpha))
        if step.index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(lambda x, step: x, (3,), schedule, SeededNoise(1), callback=callback)
    assert seen == [(i, int(schedule.timesteps[i]), float(schedule.alphas[i])) for i in range(3)]


def test_same_seed_same_result_other_seed_other_result():
    schedule = Schedule.build(4)

    def run(seed):
        return sample(lambda x, step: 0.5 * x, (8,), schedule, SeededNoise(seed))

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_v_prediction_uses_the_snapped_coefficients_and_the_integer_timestep():
    schedule = Schedule.build(50)
    step = schedule.step(45)  # timestep 99: snapped to index 98
    asked = []

    def velocity(x, timestep):
        asked.append(timestep)
        return torch.full_like(x, 2.0, dtype=torch.bfloat16)

    x = torch.linspace(-1, 1, 7)
    x0 = v_prediction(velocity)(x, step)
    assert asked == [99] and isinstance(asked[0], int)
    assert x0.dtype == torch.float32
    table = denoiser_table()
    c_skip = float(table[98])
    torch.testing.assert_close(x0, c_skip * x - math.sqrt(1 - c_skip**2) * 2.0)


@pytest.mark.parametrize("steps", [10, 50])
def test_samples_a_gaussian_with_its_exact_denoiser(steps):
    """With the exact posterior mean of x0 ~ N(mu, s^2) as the model, the SDE solver's output has that law."""
    mu, s = 1.0, 2.0

    def posterior_mean(x, step):
        a = step.alpha
        return mu + a * s**2 / (a**2 * s**2 + 1 - a**2) * (x - a * mu)

    out = sample(posterior_mean, (1, 40000), Schedule.build(steps), SeededNoise(0))
    assert abs(out.mean().item() - mu) < 0.03
    assert abs(out.std().item() / s - 1) < 0.01


def test_guidance_blends_the_two_x0_predictions():
    schedule = Schedule.build(50)
    step = schedule.step(10)
    x = torch.linspace(-2, 2, 9)
    v_uncond, v_cond = torch.sin(x), torch.cos(x)

    def x0(v):
        return v_prediction(lambda x, t: v)(x, step)

    def guided(scale):
        return guided_v_prediction(lambda x, t: (v_uncond, v_cond), scale)(x, step)

    assert torch.equal(guided(0.0), x0(v_uncond))
    torch.testing.assert_close(guided(1.0), x0(v_cond))
    torch.testing.assert_close(guided(GUIDANCE_SCALE), x0(v_uncond + GUIDANCE_SCALE * (v_cond - v_uncond)))
    assert GUIDANCE_SCALE == 3.5
    with pytest.raises(InputError, match="cfg"):
        guided_v_prediction(lambda x, t: (x, x), float("nan"))
