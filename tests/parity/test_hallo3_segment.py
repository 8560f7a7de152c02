"""Parity case `segment`, the sampler alone (SPEC §7.2, §7.4), and the denoiser with guidance (§7.3, §8)
from the network outputs `dit_step` records.

The case stores every step's guided x0 prediction (`debug.step{j}.denoised`), every random draw
(`input.noise.NNN`) and the state entering a few steps (`debug.step{j}.x_in`). Handing the recorded
predictions back as the "model" makes the states entering steps 1, 2 and 49 (and the output) a function of
the update rule, the tables and the draw order only, so the sampler is checked without the DiT. The last
test runs the whole case with the tiny networks: reference pass, 50 guided DiT steps, the recorded draws.
"""

from __future__ import annotations

import re

import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case

CASE = hallo3_case("segment")
pytestmark = pytest.mark.parity


def _draws() -> tuple[list[torch.Tensor], list[str]]:
    table = CASE.settings["noise_draws"]
    return [CASE.tensors[f"input.noise.{d['index']:03d}"] for d in table], [d["fn"] for d in table]


def _run(noise) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    from hallo_pipeline.hallo3.sampler import Schedule, sample

    steps = CASE.settings["num_steps"]
    recorded = [CASE.tensors[f"debug.step{j:02d}.denoised"] for j in range(steps)]
    entering: dict[int, torch.Tensor] = {}

    def replay(x: torch.Tensor, step) -> torch.Tensor:
        return recorded[step.index]

    def keep(step, x, denoised) -> None:
        entering[step.index] = x.clone()

    latent = sample(replay, CASE.tensors["expected.latent"].shape, Schedule.build(steps), noise, callback=keep)
    return latent, entering


def _check(latent: torch.Tensor, entering: dict[int, torch.Tensor]) -> None:
    names = [n for n in CASE.names("debug.step") if n.endswith(".x_in")]
    assert names, "the case records no x_in"
    for name in names:
        step = int(re.match(r"debug\.step(\d+)\.x_in", name).group(1))
        assert_matches(entering[step], CASE.tensors[name], CASE.tolerance(name), name)
    assert_matches(latent, CASE.tensors["expected.latent"], CASE.tolerance("expected.latent"), "expected.latent")


def test_update_rule_with_replayed_draws(hallo3_parity_path):
    from hallo_pipeline.hallo3.noise import ReplayedNoise

    draws, kinds = _draws()
    noise = ReplayedNoise(draws, kinds)
    latent, entering = _run(noise)
    assert noise.remaining == 0, f"{noise.remaining} recorded draws were not asked for"
    _check(latent, entering)


def test_seeded_noise_is_the_release_stream(hallo3_parity_path):
    """The default noise source, seeded with the run's seed, draws the release's numbers bit for bit
    (the release seeds torch's global CPU generator just before this sampler call)."""
    from hallo_pipeline.hallo3.noise import SeededNoise

    draws, kinds = _draws()
    noise = SeededNoise(CASE.settings["run_seed"])
    for index, (draw, kind) in enumerate(zip(draws, kinds)):
        ours = noise.rand(draw.shape) if kind == "rand" else noise.randn(draw.shape)
        assert torch.equal(ours, draw), f"draw {index} ({kind}) differs"
    latent, entering = _run(SeededNoise(CASE.settings["run_seed"]))
    _check(latent, entering)


def _constant(value):
    """A stand-in network that returns what was recorded."""
    return lambda x, timestep: value


def test_guided_denoiser_from_recorded_network_outputs(hallo3_parity_path):
    """`dit_step` records the DiT's v for both CFG halves at two steps of a 50-step run (the second in the
    snapping range): x0 per half and the guided x0 follow from them and the tables alone."""
    from hallo_pipeline.hallo3.sampler import Schedule, guided_v_prediction, v_prediction

    case = hallo3_case("dit_step")
    schedule = Schedule.build(CASE.settings["num_steps"])
    x = case.tensors["input.x_noisy"]
    for evaluation in case.settings["evaluations"]:
        step = schedule.step(evaluation["step_index_i"])
        assert step.timestep == evaluation["timestep_fed"]
        p = evaluation["prefix"]
        v_uncond, v_cond = case.tensors[f"{p}expected.model_output_uc"], case.tensors[f"{p}expected.model_output_c"]
        both = _constant((v_uncond, v_cond))
        ours = {
            "denoised_uc": v_prediction(_constant(v_uncond))(x, step),
            "denoised_c": v_prediction(_constant(v_cond))(x, step),
            "denoised_guided": guided_v_prediction(both, evaluation["guidance"])(x, step),
        }
        for name, tensor in ours.items():
            key = f"{p}expected.{name}"
            assert_matches(tensor, case.tensors[key], case.tolerance(key), f"dit_step {key}")


def test_whole_segment_with_the_networks(hallo3_parity_path):
    """The whole case: the reference pass on `input.ref_latent`, then 50 guided steps of the main DiT on the
    case's inputs with the recorded draws: every step's guided x0, the states and the output latent."""
    from hallo_pipeline.hallo3.noise import ReplayedNoise
    from hallo_pipeline.hallo3.sampler import Schedule, guided_v_prediction, sample
    from hallo_pipeline.testing.hallo3_cases import segment_case_velocities
    from tests.parity.hallo3_networks import tiny_hallo3

    nets = tiny_hallo3(hallo3_parity_path)
    t = CASE.tensors
    velocities = segment_case_velocities(nets, t)

    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    draws, kinds = _draws()
    noise = ReplayedNoise(draws, kinds)
    with torch.no_grad():
        latent = sample(
            guided_v_prediction(velocities, CASE.settings["guidance"]), t["expected.latent"].shape,
            Schedule.build(CASE.settings["num_steps"]), noise,
            callback=lambda step, x, denoised: seen.__setitem__(step.index, (x.clone(), denoised.clone())),
        )
    assert noise.remaining == 0
    for name in CASE.names("debug.step"):
        step, what = re.match(r"debug\.step(\d+)\.(x_in|denoised)", name).groups()
        ours = seen[int(step)][0 if what == "x_in" else 1]
        assert_matches(ours, t[name], CASE.tolerance(name), name)
    assert_matches(latent, t["expected.latent"], CASE.tolerance("expected.latent"), "expected.latent")
