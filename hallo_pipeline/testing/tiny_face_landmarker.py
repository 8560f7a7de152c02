"""A Face Landmarker `.task` bundle made from the face models that ship in the mediapipe 0.10.21 wheel.

The real model folder has `face_landmarker_v2_with_blendshapes.task`, which every mediapipe release
with the Tasks API reads; `make-tiny-models` cannot download it (it is not on a package registry), so
it assembles an equivalent bundle from mediapipe's own models:

- `face_detector.tflite` = `face_detection_short_range.tflite` (BlazeFace, 128x128), as in the
  official bundle;
- `face_landmarks_detector.tflite` = `face_landmark_with_attention.tflite`, the model behind the legacy
  face mesh with `refine_landmarks=True`. It has six landmark outputs (mesh, lips, eyes, irises) that
  the legacy graph merged into 478 points, while the Tasks API wants one (1, 1, 1, 478 * 3) tensor
  and a face-presence score. So the merge is added to the model itself: a CONCATENATION of the six
  outputs, a GATHER that puts each refined x, y over the mesh's (the index lists are mediapipe's
  `tensors_to_face_landmarks_with_attention` refinement lists), and, for the iris points' z, the
  MEAN of the eye contour's z as the legacy graph assigns it.

The result gives the legacy face mesh's landmarks through the Tasks API, on the newest mediapipe and
numpy 2 as on 0.10.21 (within 0.003 px on the parity portrait). The models are Apache-2.0 (the
mediapipe wheel's licence); the bundle carries a NOTICE saying where they come from and what changed.

Where the two .tflite files come from, in order: a wheel given by path (or `HALLO_MEDIAPIPE_WHEEL`),
an installed mediapipe that still ships them (<= 0.10.21), or `pip download mediapipe==0.10.21
--no-deps` into a temporary folder (the wheel is read, never installed).
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_ENV = "HALLO_MEDIAPIPE_WHEEL"
DETECTOR_MODEL = "modules/face_detection/face_detection_short_range.tflite"  # inside the mediapipe package
MESH_MODEL = "modules/face_landmark/face_landmark_with_attention.tflite"
# Member names the Face Landmarker graph looks for in a .task bundle.
BUNDLE_DETECTOR = "face_detector.tflite"
BUNDLE_LANDMARKS = "face_landmarks_detector.tflite"
# Any platform's wheel holds the same models; this one is asked for whatever machine runs us.
_WHEEL_TAGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # zip entries dated like this make the bundle byte-for-byte reproducible

NOTICE = f"""This Face Landmarker bundle was assembled by `python -m hallo_pipeline make-tiny-models` from
two models of the mediapipe {MEDIAPIPE_VERSION} wheel (https://pypi.org/project/mediapipe/), which are
licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0):
  {BUNDLE_DETECTOR}           = mediapipe/{DETECTOR_MODEL}, unchanged
  {BUNDLE_LANDMARKS} = mediapipe/{MESH_MODEL}, changed: its six
      landmark outputs are merged inside the model into one tensor of 478 x 3 values (mesh points
      with refined lips, eyes and irises); the network's weights are unchanged.
It is not the official face_landmarker_v2_with_blendshapes.task (no blendshapes model).
"""

# Refinement index lists of mediapipe's attention face mesh: which of the 468 mesh points each point
# of the lips (80) and eye (71 each) outputs replaces; irises are points 468-472 and 473-477.
# fmt: off
_LIPS = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
)
_LEFT_EYE = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
    156, 70, 63, 105, 66, 107, 55, 193,
)
_RIGHT_EYE = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
)
# fmt: on
_EYE_CONTOUR = 16  # the first 16 points of each eye list: the iris z is their mean z
_MESH_POINTS, _POINTS = 468, 478


def _unavailable(reason: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"the tiny model folder's face landmark model is made from mediapipe {MEDIAPIPE_VERSION}'s face models, "
        f"which could not be had: {reason}. Either fetch the wheel yourself (pip download "
        f"mediapipe=={MEDIAPIPE_VERSION} --no-deps -d <folder>) and pass it with --mediapipe-wheel (or "
        f"{WHEEL_ENV}), or skip the .task with --no-face-landmarker (landmarks then need the legacy face mesh "
        f"of pip install mediapipe=={MEDIAPIPE_VERSION}, which needs numpy<2)"
    )


def _from_wheel(wheel: Path) -> tuple[bytes, bytes]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return tuple(archive.read(f"mediapipe/{member}") for member in (DETECTOR_MODEL, MESH_MODEL))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise _unavailable(f"{str(wheel)!r} is not a mediapipe wheel with the face models ({exc})") from exc


def _from_installed() -> tuple[bytes, bytes] | None:
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files = [Path(folder) / member for member in (DETECTOR_MODEL, MESH_MODEL)]
        if all(f.is_file() for f in files):
            return tuple(f.read_bytes() for f in files)
    return None


@functools.lru_cache(maxsize=1)
def _downloaded() -> tuple[bytes, bytes] | str:
    """The models from a freshly downloaded wheel, or why there are none; asked once per process
    (a failure too: without a network pip takes minutes to give up)."""
    with tempfile.TemporaryDirectory(prefix="hallo-mediapipe-") as folder:
        command = [sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
                   "--only-binary=:all:", *_WHEEL_TAGS, "--dest", folder, "--quiet"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"running pip failed ({exc})"
        wheels = sorted(Path(folder).glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
        if done.returncode != 0 or not wheels:
            lines = (done.stderr + done.stdout).strip().splitlines()
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:] or ["it found no wheel"]
            return f"`pip download mediapipe=={MEDIAPIPE_VERSION}` failed: {errors[-1]}"
        return _from_wheel(wheels[0])


def face_models(wheel: str | Path | None = None, download: bool = True) -> tuple[bytes, bytes]:
    """(short-range face detector, attention face mesh) .tflite bytes of mediapipe 0.10.21."""
    wheel = wheel or os.environ.get(WHEEL_ENV)
    if wheel:
        return _from_wheel(Path(wheel))
    installed = _from_installed()
    if installed is not None:
        return installed
    if not download:
        raise _unavailable("the installed mediapipe does not ship them and downloading was not allowed")
    models = _downloaded()
    if isinstance(models, str):
        raise _unavailable(models)
    return models


def _tflite_schema():
    try:
        import flatbuffers
        from mediapipe.tasks.metadata import schema_py_generated
    except ImportError as exc:
        raise MissingDependencyError(
            f"making the tiny face landmark model needs mediapipe's TFLite schema module and flatbuffers ({exc}); "
            "install them with: pip install mediapipe"
        ) from exc
    return flatbuffers, schema_py_generated


def _gather_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each of the 478 x 3 output values comes from in the concatenated outputs.

    Concatenated layout: mesh (468 x 3), lips (80 x 2), left eye (71 x 2), right eye (71 x 2), left iris
    (5 x 2), right iris (5 x 2), then the two iris z means appended after them.
    """
    offsets = np.cumsum([0, _MESH_POINTS * 3, 2 * len(_LIPS), 2 * len(_LEFT_EYE), 2 * len(_RIGHT_EYE), 10, 10])
    mesh, lips, left_eye, right_eye, left_iris, right_iris, z_means = offsets
    index = np.zeros(_POINTS * 3, dtype=np.int32)
    index[: _MESH_POINTS * 3] = np.arange(_MESH_POINTS * 3)  # mesh x, y, z
    for start, ids in ((lips, _LIPS), (left_eye, _LEFT_EYE), (right_eye, _RIGHT_EYE)):
        for k, point in enumerate(ids):  # refined x, y; z stays the mesh's
            index[3 * point : 3 * point + 2] = (start + 2 * k, start + 2 * k + 1)
    for start, first, z in ((left_iris, 468, z_means), (right_iris, 473, z_means + 1)):
        for k in range(5):
            index[3 * (first + k) : 3 * (first + k) + 3] = (start + 2 * k, start + 2 * k + 1, z)
    left_z = np.array([3 * p + 2 for p in _LEFT_EYE[:_EYE_CONTOUR]], dtype=np.int32)
    right_z = np.array([3 * p + 2 for p in _RIGHT_EYE[:_EYE_CONTOUR]], dtype=np.int32)
    return index, left_z, right_z


def merged_landmark_model(attention_mesh: bytes) -> bytes:
    """The attention face mesh .tflite with its six landmark outputs merged into one 478-point tensor."""
    flatbuffers, schema = _tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(attention_mesh, 0)
    graph = model.subgraphs[0]
    if len(graph.outputs) != 7:
        raise ValueError(f"expected the attention face mesh's 7 outputs, found {len(graph.outputs)}")
    *landmarks, face_flag = graph.outputs

    def opcode(code: int) -> int:
        for i, known in enumerate(model.operatorCodes):
            if known.customCode is None and max(known.builtinCode, known.deprecatedBuiltinCode) == code:
                return i
        new = schema.OperatorCodeT()
        new.builtinCode = new.deprecatedBuiltinCode = code
        new.version = 1
        model.operatorCodes.append(new)
        return len(model.operatorCodes) - 1

    def tensor(name: str, shape: list[int], kind: int = schema.TensorType.FLOAT32, data=None) -> int:
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        new = schema.TensorT()
        new.name, new.shape, new.type, new.buffer = name.encode(), shape, kind, len(model.buffers) - 1
        graph.tensors.append(new)
        return len(graph.tensors) - 1

    def operator(code: int, inputs: list[int], outputs: list[int], options_type: int, options) -> None:
        new = schema.OperatorT()
        new.opcodeIndex, new.inputs, new.outputs = opcode(code), inputs, outputs
        new.builtinOptionsType, new.builtinOptions = options_type, options
        graph.operators.append(new)  # after every existing operator: the order is the execution order

    def concat(name: str, inputs: list[int]) -> int:
        width = sum(int(graph.tensors[i].shape[-1]) for i in inputs)
        out = tensor(name, [1, 1, 1, width])
        options = schema.ConcatenationOptionsT()
        options.axis = 3
        operator(schema.BuiltinOperator.CONCATENATION, inputs, [out], schema.BuiltinOptions.ConcatenationOptions,
                 options)
        return out

    def gather(name: str, source: int, index: np.ndarray) -> int:
        indices = tensor(f"{name}_index", [len(index)], schema.TensorType.INT32, index)
        out = tensor(name, [1, 1, 1, len(index)])
        options = schema.GatherOptionsT()
        options.axis = 3
        operator(schema.BuiltinOperator.GATHER, [source, indices], [out], schema.BuiltinOptions.GatherOptions,
                 options)
        return out

    def mean(name: str, source: int) -> int:
        axis = tensor(f"{name}_axis", [1], schema.TensorType.INT32, np.array([3], dtype=np.int32))
        out = tensor(name, [1, 1, 1, 1])
        options = schema.ReducerOptionsT()
        options.keepDims = True
        operator(schema.BuiltinOperator.MEAN, [source, axis], [out], schema.BuiltinOptions.ReducerOptions, options)
        return out

    index, left_z, right_z = _gather_indices()
    parts = concat("landmark_parts", landmarks)
    left = mean("left_iris_z", gather("left_eye_contour_z", parts, left_z))
    right = mean("right_iris_z", gather("right_eye_contour_z", parts, right_z))
    merged = gather("refined_landmarks", concat("landmark_parts_and_iris_z", [parts, left, right]), index)
    graph.outputs = [merged, face_flag]  # what the Face Landmarker graph reads: landmarks, presence
    builder = flatbuffers.Builder(len(attention_mesh) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def face_landmarker_bundle(wheel: str | Path | None = None, download: bool = True) -> bytes:
    """The bytes of the .task bundle (a zip), the same on every run."""
    detector, attention_mesh = face_models(wheel, download)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as bundle:  # mediapipe maps the members: keep them stored
        for name, data in ((BUNDLE_DETECTOR, detector), (BUNDLE_LANDMARKS, merged_landmark_model(attention_mesh)),
                           ("NOTICE.txt", NOTICE.encode())):
            bundle.writestr(zipfile.ZipInfo(name, _FIXED_DATE), data)
    return out.getvalue()


def write_face_landmarker(path: str | Path, wheel: str | Path | None = None, download: bool = True) -> Path:
    """Write the bundle to `path` (normally <models>/face_analysis/models/face_landmarker_v2_with_blendshapes.task)."""
    path = Path(path)
    data = face_landmarker_bundle(wheel, download)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # never a half-written bundle under the real name
    return path
