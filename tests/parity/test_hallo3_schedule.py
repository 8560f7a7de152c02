"""Parity case `schedule`: the sampler's tables (SPEC §7) for every step count the fixture holds.

Tolerance: tolerance.json has no float64 re-run for this case (the tables are float32/float64 constants),
so `Case.tolerance` has nothing to scale; the case's own JSON carries the README's recommended values
(atol 1e-6, the rule's floor, for the float tables; exact for the integer ones) and we use those. We do
not demand bit equality of the float tables, although this machine gives it: float32 log/exp/sqrt may
differ by an ulp between CPUs and math libraries. The discrete results are exact: timesteps, snapped
indices, and where a quantity is inf / nan (h at the first and last step, r at the first, ...).
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.conftest import Tolerance, assert_matches, hallo3_case

CASE = hallo3_case("schedule")
RUNS = sorted(CASE.settings["runs"]) if CASE.present else []
pytestmark = pytest.mark.parity


def _tolerance(name: str) -> Tolerance:
    entry = CASE.settings["tolerance"][name]
    return Tolerance(None, None) if entry.get("exact") else Tolerance(entry["atol"], entry["rms"])


def _check(actual: torch.Tensor, name: str) -> None:
    expected = CASE.tensors[name]
    actual = actual.to(expected.dtype)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite), f"{name}: inf/nan at other steps"
    assert torch.equal(actual[~finite].nan_to_num(), expected[~finite].nan_to_num()), f"{name}: other non-finite values"
    tol = _tolerance(name)
    if tol.atol is None:
        assert torch.equal(actual, expected), f"{name}: not exactly equal"
    else:
        assert_matches(actual[finite], expected[finite], tol, name)


def test_training_tables(hallo3_parity_path):
    from hallo_pipeline.hallo3.sampler import denoiser_table, train_alphas_cumprod, train_betas

    _check(train_betas(), "expected.betas_1000")
    _check(train_alphas_cumprod(), "expected.alphas_cumprod_1000")
    _check(denoiser_table(), "expected.denoiser_sqrt_alphas_cumprod_1000")


@pytest.mark.parametrize("run", RUNS)
def test_run_tables(hallo3_parity_path, run):
    from hallo_pipeline.hallo3.sampler import Schedule

    steps = CASE.settings["runs"][run]["num_steps"]
    s = Schedule.build(steps)
    nan = torch.full((1,), float("nan"))
    ours = {
        # the fixture's `timesteps` is the release's table: -1 (the clean end, alpha 1) then ascending
        "timesteps": torch.cat([torch.tensor([-1]), s.timesteps.flip(0)]),
        "alpha_cumprod_sqrt": s.alphas,
        "alpha": s.alphas[:-1],
        "next_alpha": s.alphas[1:],
        "prev_alpha": torch.cat([nan, s.alphas[:-2]]),
        "timestep": s.timesteps,
        "snapped_index": s.snapped_index,
        "snapped_alpha": s.c_skip,
        "c_skip": s.c_skip,
        "c_out": s.c_out,
        "h": s.h,
        "r": s.r,
        "mult1": s.m1,
        "mult2": s.m2,
        "mult3": s.w_now,
        "mult4": s.w_prev,
        "mult_noise": s.sigma,
    }
    names = {n.split(".expected.", 1)[1] for n in CASE.names(f"{run}.expected.")}
    assert names <= set(ours), f"tables we do not compute: {sorted(names - set(ours))}"
    for table in sorted(names):
        _check(ours[table], f"{run}.expected.{table}")
    # the JSON's lists too (the DiT's timesteps and the snapped indices, in step order)
    assert s.timesteps.tolist() == [int(t) for t in CASE.settings["runs"][run]["timesteps_fed"]]
    assert s.snapped_index.tolist() == CASE.settings["runs"][run]["snapped_index"]


def test_dit_step_evaluations_snap_like_the_release(hallo3_parity_path):
    """`dit_step` records two evaluations of a 50-step run; the second one is in the snapping range."""
    from hallo_pipeline.hallo3.sampler import Schedule

    evaluations = hallo3_case("dit_step").settings["evaluations"]
    schedule = Schedule.build(CASE.settings["runs"]["segment"]["num_steps"])
    for evaluation in evaluations:
        step = schedule.step(evaluation["step_index_i"])
        assert step.timestep == evaluation["timestep_fed"]
        assert int(schedule.snapped_index[step.index]) == evaluation["snapped_index_1000"]
        assert step.alpha == pytest.approx(evaluation["alpha_cumprod_sqrt_50"], abs=1e-6)
        assert step.c_skip == pytest.approx(evaluation["c_skip"], abs=1e-6)
        assert step.c_out == pytest.approx(evaluation["c_out"], abs=1e-6)
