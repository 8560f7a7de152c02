"""Parity case `pipeline_hallo2` (generation, issue #4)."""

import pytest

pytestmark = pytest.mark.parity


def test_pipeline_hallo2() -> None:
    pytest.skip("the pipeline_hallo2 parity case arrives with issue #4 (generation)")
