"""Shared test setup: CPU, one thread, fp32; where the read-only `../shared` material lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def parity_dir() -> Path:
    """HALLO_PARITY_DIR, or ../shared/parity beside the repository."""
    env = os.environ.get("HALLO_PARITY_DIR")
    return Path(env).resolve() if env else SHARED / "parity"


@pytest.fixture(scope="session")
def parity_path() -> Path:
    path = parity_dir()
    if not (path / "tiny_config.json").is_file():
        pytest.skip(f"parity fixtures not found at {path} (set HALLO_PARITY_DIR to the fixture folder)")
    return path


@pytest.fixture(scope="session")
def net_keys_tsv() -> Path:
    path = SHARED / "hallo_net_keys.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found: the official key list lives in ../shared beside the repository")
    return path


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A complete model folder in the official layout with tiny random weights (make-tiny-models)."""
    pytest.importorskip("onnx")
    pytest.importorskip("insightface")
    from hallo_pipeline.testing.tiny_models import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("hallo_models"))


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """The parity fixtures' public-domain portrait (mediapipe finds its face offline)."""
    path = parity_dir() / "inputs" / "face.png"
    if not path.is_file():
        pytest.skip(f"{path} not found (set HALLO_PARITY_DIR to the fixture folder)")
    return path
