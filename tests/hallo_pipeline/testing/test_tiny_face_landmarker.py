"""The tiny model folder's Face Landmarker bundle: what it holds and where its models come from.

Whether mediapipe reads it and what landmarks it gives is tested with the landmark tests
(tests/hallo_pipeline/face/test_landmarks.py) and the masks parity case.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from hallo_pipeline.errors import MissingDependencyError
from hallo_pipeline.testing import tiny_face_landmarker as tfl


def test_bundle_members_and_notice(face_landmarker_task) -> None:
    with zipfile.ZipFile(face_landmarker_task) as bundle:
        assert bundle.namelist() == [tfl.BUNDLE_DETECTOR, tfl.BUNDLE_LANDMARKS, "NOTICE.txt"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in bundle.infolist())
        notice = bundle.read("NOTICE.txt").decode()
        detector = bundle.read(tfl.BUNDLE_DETECTOR)
    assert "Apache License, Version 2.0" in notice and tfl.MEDIAPIPE_VERSION in notice
    assert detector == tfl.face_models()[0], "the detector is mediapipe's, unchanged"


def test_bundle_is_reproducible(face_landmarker_task, monkeypatch) -> None:
    import time

    # Made "on another day" than the fixture's bundle: no date or time may reach the bytes.
    another_day = time.time() + 400 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: another_day)
    assert tfl.face_landmarker_bundle() == face_landmarker_task.read_bytes()


def test_merged_model_outputs(face_landmarker_task) -> None:
    """Two outputs, as the Face Landmarker graph reads them: 478 x 3 landmark values, then presence."""
    _, schema = tfl._tflite_schema()
    with zipfile.ZipFile(face_landmarker_task) as bundle:
        model = schema.ModelT.InitFromPackedBuf(bundle.read(tfl.BUNDLE_LANDMARKS), 0)
    graph = model.subgraphs[0]
    shapes = [list(graph.tensors[i].shape) for i in graph.outputs]
    assert shapes == [[1, 1, 1, 478 * 3], [1, 1, 1, 1]]
    assert graph.tensors[graph.outputs[1]].name == b"conv_faceflag"


def test_gather_indices_follow_the_refinement_lists() -> None:
    index, left_z, right_z = tfl._gather_indices()
    mesh = 468 * 3
    lips, left_eye = mesh, mesh + 160
    assert index.shape == (478 * 3,) and index.dtype == np.int32
    assert index[3 * 10 : 3 * 10 + 3].tolist() == [30, 31, 32], "a point no part refines: the mesh's x, y, z"
    assert index[3 * 61 : 3 * 61 + 3].tolist() == [lips, lips + 1, 3 * 61 + 2], "lip corner: refined x, y, mesh z"
    assert index[3 * 33 : 3 * 33 + 2].tolist() == [left_eye, left_eye + 1]
    assert index[3 * 468 + 2] == mesh + 160 + 142 + 142 + 20, "left iris centre z: the first appended mean"
    assert index[3 * 477 + 2] == mesh + 160 + 142 + 142 + 20 + 1
    assert len(set(left_z.tolist())) == len(left_z) == 16 and (left_z % 3 == 2).all()
    assert not set(left_z.tolist()) & set(right_z.tolist())


def test_models_from_a_given_wheel(tmp_path) -> None:
    wheel = tmp_path / "mediapipe-0.10.21-cp311-cp311-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"mediapipe/{tfl.DETECTOR_MODEL}", b"detector")
        archive.writestr(f"mediapipe/{tfl.MESH_MODEL}", b"mesh")
    assert tfl.face_models(wheel) == (b"detector", b"mesh")
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mediapipe/__init__.py", b"")
    with pytest.raises(MissingDependencyError, match=r"not a mediapipe wheel with the face models.*--mediapipe-wheel"):
        tfl.face_models(wheel)


def test_no_source_and_no_download_says_what_to_do(monkeypatch) -> None:
    monkeypatch.delenv(tfl.WHEEL_ENV, raising=False)
    monkeypatch.setattr(tfl, "_from_installed", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"downloading was not allowed.*pip download mediapipe==0\.10\.21"
                       r".*--no-face-landmarker"):
        tfl.face_models(download=False)


def test_failed_download_is_explained_once(monkeypatch) -> None:
    calls = []

    def failing_pip(command, **kwargs):
        calls.append(command)
        return type("Done", (), {"returncode": 1, "stdout": "", "stderr": "ERROR: No matching distribution found"})()

    monkeypatch.delenv(tfl.WHEEL_ENV, raising=False)
    monkeypatch.setattr(tfl, "_from_installed", lambda: None)
    monkeypatch.setattr(tfl.subprocess, "run", failing_pip)
    tfl._downloaded.cache_clear()
    try:
        for _ in range(2):
            with pytest.raises(MissingDependencyError, match=r"mediapipe==0\.10\.21` failed: ERROR: No matching"):
                tfl.face_models()
    finally:
        tfl._downloaded.cache_clear()
    assert len(calls) == 1, "asked pip once per process"
    assert calls[0][1:6] == ["-m", "pip", "download", "mediapipe==0.10.21", "--no-deps"]


def test_written_atomically(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tfl, "face_landmarker_bundle", lambda wheel, download: b"PK bundle")
    path = tfl.write_face_landmarker(tmp_path / "models" / "x.task")
    assert path.read_bytes() == b"PK bundle" and sorted(p.name for p in path.parent.iterdir()) == ["x.task"]

    def write_half_then_fail(self, data):  # a full disk or a killed process mid-write
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("no space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_half_then_fail)
    with pytest.raises(OSError, match="no space left"):
        tfl.write_face_landmarker(tmp_path / "other" / "y.task")
    assert not (tmp_path / "other" / "y.task").exists(), "a half-written bundle under the real name"
