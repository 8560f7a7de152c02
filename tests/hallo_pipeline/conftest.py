"""Shared inputs of the face tests (`face/` and the Hallo family's analysis): a real portrait, stand-in face models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import parity_dir

PORTRAIT = "inputs/face.png"  # the public-domain portrait of the parity fixtures


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """RGB uint8 portrait with one face (mediapipe finds it offline)."""
    path = parity_dir() / PORTRAIT
    if not path.is_file():
        pytest.skip(f"{path} not found (set HALLO_PARITY_DIR to the fixture folder)")
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A model folder whose face_analysis/models holds the generated detector and recogniser."""
    pytest.importorskip("onnx")
    pytest.importorskip("insightface")
    from hallo_pipeline.testing.tiny_face_models import write_tiny_face_models

    root = tmp_path_factory.mktemp("models")
    write_tiny_face_models(root / "face_analysis" / "models")
    return root


@pytest.fixture(scope="session")
def analysis_models_dir(tmp_path_factory, tiny_models_dir, face_landmarker_task) -> Path:
    """The stand-in detector and recogniser plus the tiny folder's Face Landmarker .task."""
    import shutil

    from hallo_pipeline.face.landmarks import TASK_FILE

    root = tmp_path_factory.mktemp("analysis_models")
    shutil.copytree(tiny_models_dir / "face_analysis", root / "face_analysis")
    shutil.copyfile(face_landmarker_task, root / TASK_FILE)
    return root


@pytest.fixture(scope="session")
def identity_encoder(tiny_models_dir):
    from hallo_pipeline.face.identity import IdentityEncoder

    return IdentityEncoder(tiny_models_dir)
