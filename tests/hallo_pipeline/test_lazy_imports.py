"""Importing the preprocessing modules loads none of the heavy optional libraries (they load on use)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

MODULES = [
    "hallo_pipeline.face.finder",
    "hallo_pipeline.hallo.face_analysis",
    "hallo_pipeline.families",
    "hallo_pipeline.audio.features",
    "hallo_pipeline.audio.separation",
    "hallo_pipeline.testing.tiny_face_models",
    "hallo_pipeline.testing.tiny_separator",
    "hallo_pipeline.testing.tiny_wav2vec2",
]
HEAVY = ["mediapipe", "insightface", "onnxruntime", "onnx", "cv2", "transformers", "av", "scipy"]


def test_preprocessing_modules_import_lazily() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
