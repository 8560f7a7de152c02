"""Parity case `pipeline_hallo2`: Hallo2 generation: as `pipeline` plus the motion-frame pixel drop.
No such case is shared yet; these tests skip until a fixture folder holds `pipeline_hallo2.json/.safetensors`."""

from __future__ import annotations

import pytest

from tests.parity.conftest import case
from tests.parity.pipeline_cases import check_forced, check_free, forced_names, forced_run, free_names, free_run

CASE = case("pipeline_hallo2")
pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def free(tiny_net, tiny_codec):
    return free_run(CASE, tiny_net, tiny_codec)


@pytest.fixture(scope="module")
def forced(tiny_net, tiny_codec):
    return forced_run(CASE, tiny_net, tiny_codec)


@pytest.mark.parametrize("name", free_names(CASE))
def test_pipeline_hallo2(name: str, free: dict) -> None:
    check_free(CASE, free, name)


@pytest.mark.parametrize("name", forced_names(CASE))
def test_pipeline_hallo2_teacher_forced(name: str, forced: dict) -> None:
    check_forced(CASE, forced, name)
