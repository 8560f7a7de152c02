"""Parity case `audio_features` (preprocessing, issue #3)."""

import pytest

pytestmark = pytest.mark.parity


def test_audio_features() -> None:
    pytest.skip("the audio_features parity case arrives with issue #3 (preprocessing)")
