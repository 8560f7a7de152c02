"""Fixtures for the node tests: the pack inside a stand-in ComfyUI, and a tiny model folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.nodes.comfy_env import comfy_env


@pytest.fixture
def comfy(tmp_path):
    """The pack loaded as ComfyUI (V3 API) loads it; models folder: tmp_path/models (empty)."""
    with comfy_env(tmp_path / "models") as env:
        yield env


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """Net + VAE of the tiny models in the official layout (read-only for tests: copy before changing)."""
    from hallo_pipeline.testing.tiny_models import write_tiny_net, write_tiny_vae

    root = tmp_path_factory.mktemp("tiny") / "hallo"
    write_tiny_net(root / "hallo", seed=0)
    write_tiny_vae(root / "sd-vae-ft-mse", seed=2)
    return root


@pytest.fixture
def comfy_with_models(tmp_path, tiny_model_folder):
    """The pack in a stand-in ComfyUI whose models/hallo is the tiny model folder."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "hallo").symlink_to(tiny_model_folder, target_is_directory=True)
    with comfy_env(models) as env:
        yield env


def copy_models(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
