"""Tiny random wav2vec2 folders (other sizes than the parity fixture's) shared by the audio tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def wav2vec_dir(tmp_path_factory) -> Path:
    from hallo_pipeline.testing.tiny_wav2vec2 import write_tiny_wav2vec2

    return write_tiny_wav2vec2(tmp_path_factory.mktemp("w2v") / "base", hidden_size=16, conv_dim=8)


@pytest.fixture(scope="session")
def stable_wav2vec_dir(tmp_path_factory) -> Path:
    """The pre-norm ("stable layer norm") variant, stored as a pickle instead of safetensors."""
    from hallo_pipeline.testing.tiny_wav2vec2 import write_tiny_wav2vec2

    return write_tiny_wav2vec2(
        tmp_path_factory.mktemp("w2v") / "stable",
        hidden_size=24,
        layers=3,
        conv_dim=12,
        stable_layer_norm=True,
        safetensors=False,
    )


@pytest.fixture(scope="session")
def encoder(wav2vec_dir):
    from hallo_pipeline.audio.features import AudioEncoder

    return AudioEncoder(wav2vec_dir)
