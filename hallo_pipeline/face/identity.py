"""The identity embedding: insightface's `FaceAnalysis` over the antelopev2 ONNX files (SPEC §8).

The release takes the raw (not L2-normalised) 512-d ArcFace `embedding` of the largest face
detected at 640x640. insightface picks each model's role from its ONNX inputs/outputs, so only
the detector (SCRFD) and the recogniser (glintr100) of the pack matter.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from .._optional import require
from ..errors import CheckpointError, InputError
from .landmarks import check_multiple_faces_option

FACE_MODELS_DIR = Path("face_analysis") / "models"
DETECTION_SIZE = (640, 640)
EMBEDDING_SIZE = 512
_EXPECTED_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx")


class IdentityEncoder:
    """Loads the detector and recogniser once; `embedding(rgb)` gives the release's face vector."""

    def __init__(self, models_dir: str | Path, providers: Sequence[str] | None = None):
        folder = (Path(models_dir) / FACE_MODELS_DIR).resolve()
        if not folder.is_dir() or not any(folder.glob("*.onnx")):
            raise CheckpointError(self._missing(folder, "has no .onnx files"))
        require("onnxruntime", "onnxruntime", "The face identity embedding")
        insightface_app = require("insightface.app", "insightface", "The face identity embedding")
        # insightface prints model discovery to stdout in some versions; keep the console clean.
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                # An absolute `name` is used as the folder as is by every insightface version (old
                # ones join it onto root/models, which leaves an absolute path unchanged); no download.
                self._app = insightface_app.FaceAnalysis(
                    name=str(folder),
                    root=str(folder.parent),
                    allowed_modules=["detection", "recognition"],
                    providers=list(providers or ["CPUExecutionProvider"]),
                )
            except AssertionError as exc:  # insightface asserts that a detector was found
                raise CheckpointError(self._missing(folder, "has no face detector insightface recognises")) from exc
            if "recognition" not in self._app.models:
                raise CheckpointError(self._missing(folder, "has no face recognition model insightface recognises"))
            self._app.prepare(ctx_id=0, det_size=DETECTION_SIZE)

    @staticmethod
    def _missing(folder: Path, what: str) -> str:
        return (
            f"face model folder {str(folder)!r} {what}; it should hold insightface's antelopev2 pack "
            f"({', '.join(_EXPECTED_FILES)}, ...) as in the Hugging Face repo fudan-generative-ai/hallo "
            f"(folder {FACE_MODELS_DIR.as_posix()})"
        )

    def faces(self, rgb: np.ndarray) -> list:
        """insightface `Face` objects (bbox, det_score, embedding, ...) for an RGB uint8 image."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # insightface expects OpenCV's BGR order
        return list(self._app.get(bgr))

    def embedding(
        self, rgb: np.ndarray, multiple_faces: str = "error", allow_missing: bool = False, name: str = "image"
    ) -> np.ndarray:
        """(512,) float32 raw embedding of the face; zeros when none is found and `allow_missing`."""
        check_multiple_faces_option(multiple_faces)
        faces = self.faces(rgb)
        if not faces:
            if allow_missing:
                # What the release silently did; the identity conditioning is then the unconditional one.
                return np.zeros(EMBEDDING_SIZE, dtype=np.float32)
            raise InputError(
                f"the face recogniser found no face in {name}; use a sharper, frontal, well-lit portrait, "
                "or set allow_missing_identity=True to continue without identity (as the release did)"
            )
        if len(faces) > 1 and multiple_faces == "error":
            raise InputError(
                f"the face recogniser found {len(faces)} faces in {name}; Hallo animates one face. Crop the "
                "image to one person, or set multiple_faces='largest' to use the largest face"
            )
        # A stable sort by box area, last = largest: the release's choice, ties included.
        largest = sorted(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))[-1]
        embedding = np.asarray(largest.embedding, dtype=np.float32).reshape(-1)
        if embedding.size != EMBEDDING_SIZE:
            raise CheckpointError(
                f"the face recognition model gives {embedding.size}-d vectors, Hallo needs {EMBEDDING_SIZE}-d "
                f"ones; use glintr100.onnx of the antelopev2 pack in {FACE_MODELS_DIR.as_posix()}"
            )
        return embedding
