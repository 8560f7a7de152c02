"""Shared test setup: CPU, one thread, fp32; where the read-only `../shared` material lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# The read-only shared material: HALLO_SHARED_DIR, or ../shared beside the repository (a git worktree elsewhere
# sets the variable).
SHARED = Path(os.environ.get("HALLO_SHARED_DIR") or REPO.parent / "shared").resolve()


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


def hallo3_parity_dir() -> Path:
    """HALLO3_PARITY_DIR, or ../shared/parity-hallo3 beside the repository."""
    env = os.environ.get("HALLO3_PARITY_DIR")
    return Path(env).resolve() if env else SHARED / "parity-hallo3"


@pytest.fixture(scope="session")
def hallo3_parity_path() -> Path:
    path = hallo3_parity_dir()
    if not (path / "tiny_config.json").is_file():
        pytest.skip(f"Hallo3 parity fixtures not found at {path} (set HALLO3_PARITY_DIR to the fixture folder)")
    return path


@pytest.fixture(scope="session")
def net_keys_tsv() -> Path:
    path = SHARED / "hallo_net_keys.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found: the official key list lives in ../shared beside the repository")
    return path


def mediapipe_face_models_or_skip() -> tuple[bytes, bytes]:
    """mediapipe 0.10.21's face models (installed, HALLO_MEDIAPIPE_WHEEL, or fetched with pip), or a skip."""
    pytest.importorskip("mediapipe")
    from hallo_pipeline.errors import MissingDependencyError
    from hallo_pipeline.testing.tiny_face_landmarker import face_models

    try:
        return face_models()
    except MissingDependencyError as exc:
        pytest.skip(f"no face landmark model for the tiny model folder: {exc}")


@pytest.fixture(scope="session")
def face_landmarker_task(tmp_path_factory) -> Path:
    """The Face Landmarker .task that make-tiny-models writes (mediapipe 0.10.21's face models, merged)."""
    mediapipe_face_models_or_skip()
    from hallo_pipeline.face.landmarks import TASK_FILE
    from hallo_pipeline.testing.tiny_face_landmarker import write_face_landmarker

    return write_face_landmarker(tmp_path_factory.mktemp("landmarker") / TASK_FILE.name)


def make_tiny_models_or_skip(root: Path) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("insightface")
    mediapipe_face_models_or_skip()
    from hallo_pipeline.hallo.tiny_models import make_tiny_models

    return make_tiny_models(root)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A complete model folder in the official layout with tiny random weights (make-tiny-models)."""
    return make_tiny_models_or_skip(tmp_path_factory.mktemp("hallo_models"))


@pytest.fixture(scope="session")
def tiny_hallo3_folder(tmp_path_factory) -> Path:
    """A Hallo3 model folder in the release layout with tiny random weights (make-tiny-models --hallo3); its
    sizes are in its own config.json. Shared by every test: copy or link what a test changes."""
    for module in ("onnx", "sentencepiece", "insightface"):
        pytest.importorskip(module)
    mediapipe_face_models_or_skip()
    from hallo_pipeline.hallo3.tiny_models import make_tiny_models_hallo3

    return make_tiny_models_hallo3(tmp_path_factory.mktemp("hallo3_models") / "hallo3-tiny", seed=1)


PORTRAIT = REPO / "tests" / "data" / "portrait.png"
# scikit-image's `astronaut()` (NASA, public domain) whole, 512x512, as JPEG: a real photo nobody here
# made, to cut into 3:4, 16:9 and other frames around its face.
ASTRONAUT = REPO / "tests" / "data" / "astronaut.jpg"


def astronaut(top: int = 0, left: int = 0, height: int = 512, width: int = 512):
    """The astronaut photo (RGB uint8), or a window of it."""
    import numpy as np
    from PIL import Image

    with Image.open(ASTRONAUT) as image:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[top : top + height, left : left + width])


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """A real portrait committed with the tests: 256x256 from scikit-image's `astronaut()`
    (NASA, public domain), cropped around the face. Parity tests use the fixtures' own face.png."""
    return PORTRAIT
