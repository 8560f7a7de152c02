"""The identity embedding: insightface's `FaceAnalysis` over the antelopev2 ONNX files (SPEC §8).

The release takes the raw (not L2-normalised) 512-d ArcFace `embedding` of the largest face
detected at 640x640. insightface picks each model's role from its ONNX inputs/outputs, so only
the detector (SCRFD) and the recogniser (glintr100) of the pack matter.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .._optional import require
from ..errors import CheckpointError, InputError
from .landmarks import check_multiple_faces_option, several_faces_error

FACE_MODELS_DIR = Path("face_analysis") / "models"
DETECTION_SIZE = (640, 640)
EMBEDDING_SIZE = 512
_EXPECTED_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx")


@contextlib.contextmanager
def _quiet_insightface():
    """Hide the deprecation warnings raised from insightface's own modules (e.g. scikit-image's
    `tform.estimate` FutureWarning in its face alignment) during its calls, and nothing else."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"insightface(\.|$)")
        yield


def _damaged_files(folder: Path, exc: Exception, onnxruntime) -> list[tuple[Path, str]]:
    """The ONNX files of `folder` that onnxruntime cannot load, each with its reason."""
    files = sorted(folder.glob("*.onnx"))
    named = [f for f in files if str(f) in str(exc)]  # onnxruntime names the file it failed on
    if named:
        return [(f, str(exc)) for f in named]
    damaged = []
    for file in files:  # not named: try each file on its own
        try:
            onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime's errors share no base class but Exception
            damaged.append((file, str(error)))
    return damaged


def _damaged_message(damaged: list[tuple[Path, str]], models_dir: Path) -> str:
    file, reason = damaged[0]
    # onnxruntime says "[ONNXRuntimeError] : 7 : ... Load model from <path> failed:<why>"; keep the why.
    reason = reason.split("failed:", 1)[-1].strip()
    others = "".join(f"; {str(f)!r} is damaged too" for f, _ in damaged[1:])
    return (
        f"face model file {str(file)!r} is damaged or incomplete (onnxruntime: {reason}){others}; delete it and "
        f"download it again: python -m hallo_pipeline download {str(models_dir)!r}"
    )


class IdentityEncoder:
    """Loads the detector and recogniser once; `embedding(rgb)` gives the release's face vector."""

    def __init__(self, models_dir: str | Path, providers: Sequence[str] | None = None):
        folder = (Path(models_dir) / FACE_MODELS_DIR).resolve()
        if not folder.is_dir() or not any(folder.glob("*.onnx")):
            raise CheckpointError(self._missing(folder, "has no .onnx files"))
        onnxruntime = require("onnxruntime", "onnxruntime", "The face identity embedding")
        insightface_app = require("insightface.app", "insightface", "The face identity embedding")
        # insightface prints model discovery to stdout in some versions; keep the console clean.
        with contextlib.redirect_stdout(io.StringIO()), _quiet_insightface():
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
            except Exception as exc:  # noqa: BLE001 - onnxruntime's load errors share no base class but Exception
                # insightface loads every .onnx file of the folder (to learn its role), so one damaged
                # file, used or not, stops it; name it instead of showing onnxruntime's traceback.
                damaged = _damaged_files(folder, exc, onnxruntime)
                if not damaged:
                    raise
                raise CheckpointError(_damaged_message(damaged, Path(models_dir))) from exc
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
        with _quiet_insightface():
            return list(self._app.get(bgr))

    def face_boxes(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 4) float64 boxes x0, y0, x1, y1 (pixels) of every face the detector finds; no recognition."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        with _quiet_insightface():
            detections, _ = self._app.det_model.detect(bgr, max_num=0, metric="default")
        return np.asarray(detections, dtype=np.float64).reshape(-1, 5)[:, :4]

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
            raise several_faces_error(f"the face recogniser found {len(faces)} faces in {name}")
        # A stable sort by box area, last = largest: the release's choice, ties included.
        largest = sorted(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))[-1]
        embedding = np.asarray(largest.embedding, dtype=np.float32).reshape(-1)
        if embedding.size != EMBEDDING_SIZE:
            raise CheckpointError(
                f"the face recognition model gives {embedding.size}-d vectors, Hallo needs {EMBEDDING_SIZE}-d "
                f"ones; use glintr100.onnx of the antelopev2 pack in {FACE_MODELS_DIR.as_posix()}"
            )
        return embedding
