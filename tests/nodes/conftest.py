"""Fixtures for the node tests: the pack inside a stand-in ComfyUI, and a tiny model folder."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.nodes.comfy_env import comfy_env


@pytest.fixture
def comfy(tmp_path):
    """The pack loaded as ComfyUI (V3 API) loads it; models folder: tmp_path/models (empty)."""
    with comfy_env(tmp_path / "models") as env:
        yield env


@pytest.fixture(scope="session")
def tiny_models(tiny_model_folder) -> Path:
    """The session's tiny model folder (`make-tiny-models`): Hallo + Hallo2 nets, VAE, wav2vec2, face models.
    Shared by every test, so tests must not write into it (copy or link what they change)."""
    return tiny_model_folder


@pytest.fixture
def comfy_with_models(tmp_path, tiny_models):
    """The pack in a stand-in ComfyUI whose models/hallo is the tiny model folder."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "hallo").symlink_to(tiny_models, target_is_directory=True)
    with comfy_env(models) as env:
        yield env


@contextmanager
def comfy_over(tmp_path_factory, folder: Path) -> Iterator:
    """The pack in a stand-in ComfyUI whose models/hallo is `folder` (linked, never written)."""
    models = tmp_path_factory.mktemp("comfy") / "models"
    models.mkdir()
    (models / "hallo").symlink_to(folder, target_is_directory=True)
    with comfy_env(models) as env:
        yield env


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_models):
    """`comfy_with_models` once per test module (preprocessing and output nodes keep no state between calls).
    A module overrides it to run the nodes over another folder (e.g. the tiny Hallo3 one)."""
    with comfy_over(tmp_path_factory, tiny_models) as env:
        yield env


@pytest.fixture(scope="module")
def run(env):
    """run(node_id, **inputs) -> the node's outputs, as ComfyUI executes a node; `run.env` is the ComfyUI env."""
    nodes = env.nodes()

    def execute(node_id, **inputs):
        return nodes[node_id].execute(**inputs).args

    execute.env = env
    return execute


@pytest.fixture(scope="module")
def pipeline(run):
    """The loader node's pipeline for models/hallo, on the CPU."""
    (pipe,) = run("HalloModelLoader", model_folder="hallo", variant="auto", precision="auto", device="auto",
                  attention="auto")
    return pipe
