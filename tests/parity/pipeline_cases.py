"""Parametrisation shared by the `pipeline` and `pipeline_hallo2` parity tests."""

from __future__ import annotations

import re

import pytest

from tests.parity.conftest import Case, assert_matches
from tests.parity.pipeline_runner import run_free, run_teacher_forced

# Tensors of the audio chain, compared by the preprocessing parity tests, not by the sampler's.
PREPROCESSING = {"debug.wav2vec_hidden_states"}
TEACHER_FORCED = re.compile(r"debug\.(clip\d+\.step\d+\.(model_output|latents))$")


def free_names(case: Case) -> list:
    names = [n for n in case.names("expected.", "debug.") if n not in PREPROCESSING]
    return names or [pytest.param("-", marks=pytest.mark.skip(reason=f"no {case.name} case in {case.root}"))]


def forced_names(case: Case) -> list:
    names = [m.group(1) for n in case.names("debug.") if (m := TEACHER_FORCED.match(n))]
    return names or [pytest.param("-", marks=pytest.mark.skip(reason=f"no {case.name} case in {case.root}"))]


def free_run(case: Case, net, codec) -> dict:
    if not case.present:
        pytest.skip(f"case files {case.name}.json/.safetensors not in {case.root}")
    return run_free(case, net, codec)


def forced_run(case: Case, net, codec) -> dict:
    if not case.present:
        pytest.skip(f"case files {case.name}.json/.safetensors not in {case.root}")
    return run_teacher_forced(case, net, codec)


def check_free(case: Case, outputs: dict, name: str) -> None:
    assert name in outputs, f"{case.name}: the fixture has {name!r}, which the sampler did not produce"
    assert_matches(outputs[name], case.tensors[name], case.tolerance(name), f"{case.name} {name}")


def check_forced(case: Case, outputs: dict, name: str) -> None:
    """Teacher-forced steps are judged at the scale of one step (the `denoise_step` case's)."""
    scale = Case(case.root, "denoise_step")
    tol = scale.tolerance("expected.noise_pred") if scale.present else case.tolerance(f"debug.{name}")
    assert_matches(outputs[name], case.tensors[f"debug.{name}"], tol, f"{case.name} teacher-forced {name}")
