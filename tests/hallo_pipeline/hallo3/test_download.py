"""`download --hallo3`: exactly the files Hallo3 inference reads (SPEC-HALLO3 §1), after a free-space check, from a
stand-in hub on 127.0.0.1 (tests/hub_server.py)."""

from __future__ import annotations

import fnmatch
from collections import namedtuple

import pytest

import hallo_pipeline.download as shared
from hallo_pipeline.cli import main
from tests.hub_server import hub as serve_hub

# Files of the repo (SPEC §1) inference reads, and some it does not.
READ = [
    "hallo3/latest", "hallo3/1/mp_rank_00_model_states.pt", "cogvideox-5b-i2v-sat/vae/3d-vae.pt",
    "t5-v1_1-xxl/config.json", "t5-v1_1-xxl/spiece.model", "t5-v1_1-xxl/model-00001-of-00002.safetensors",
    "wav2vec/wav2vec2-base-960h/config.json", "face_analysis/models/scrfd_10g_bnkps.onnx",
    "face_analysis/models/glintr100.onnx", "face_analysis/models/face_landmarker_v2_with_blendshapes.task",
]
SEPARATOR = "audio_separator/Kim_Vocal_2.onnx"
NOT_READ = [
    "cogvideox-5b-i2v-sat/transformer/latest", "cogvideox-5b-i2v-sat/transformer/1/mp_rank_00_model_states.pt",
    "hallo/net.pth", "README.md",
]
Usage = namedtuple("Usage", "total used free")


class AnyFile(dict):
    """Every path of the repo exists on the stand-in hub: what is asked for is what the requests show."""

    def get(self, key, default=None):
        return b"1" if key.endswith("/latest") else b"{}"


@pytest.fixture
def hub(monkeypatch):
    """The requests to the stand-in hub ("GET repo/path", ...)."""
    with serve_hub(monkeypatch, AnyFile()) as requests:
        yield requests


def fetched(requests: list[str]) -> list[str]:
    return [r.split(" ", 1)[1] for r in requests if r.startswith("GET ")]


def free_space(monkeypatch, gb: float) -> None:
    monkeypatch.setattr(shared.shutil, "disk_usage", lambda path: Usage(10**13, 0, int(gb * 1e9)))


def asked(patterns: list[str], path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


@pytest.mark.parametrize("separator", [True, False])
def test_exactly_the_inference_files_are_asked_for(hub, tmp_path, monkeypatch, capsys, separator) -> None:
    free_space(monkeypatch, 100)
    args = ["download", str(tmp_path / "m"), "--hallo3", *([] if separator else ["--no-vocal-separator"])]
    assert main(args) == 0
    assert "model folder ready" in capsys.readouterr().out
    repos = {p.split("/", 2)[0] + "/" + p.split("/", 2)[1] for p in fetched(hub)}
    assert repos == {"fudan-generative-ai/hallo3"}
    patterns = [p.split("/", 2)[2] for p in fetched(hub)]
    assert [p for p in READ if not asked(patterns, p)] == []
    assert [p for p in NOT_READ if asked(patterns, p)] == []
    assert asked(patterns, SEPARATOR) == separator


def test_a_full_disk_stops_before_anything_is_fetched(hub, tmp_path, monkeypatch, capsys) -> None:
    free_space(monkeypatch, 30)  # the checkpoint alone is about 29 GB, T5 9.5 GB
    assert main(["download", str(tmp_path / "m"), "--hallo3"]) == 2
    err = capsys.readouterr().err
    assert "needs about 40" in err and "30.0 GB are free" in err
    assert hub == []


def test_files_already_there_are_neither_fetched_nor_counted(hub, tmp_path, monkeypatch, capsys) -> None:
    root = tmp_path / "m"
    (root / "hallo3" / "1").mkdir(parents=True)
    (root / "hallo3" / "1" / "mp_rank_00_model_states.pt").write_bytes(b"x")  # the 29 GB file is there
    free_space(monkeypatch, 12)
    assert main(["download", str(root), "--hallo3"]) == 0
    paths = " ".join(fetched(hub))
    assert "hallo3/1/mp_rank_00_model_states.pt" not in paths and "hallo3/latest" in paths


def test_a_download_that_delivers_no_weights_is_an_error(tmp_path, monkeypatch, capsys) -> None:
    import huggingface_hub

    free_space(monkeypatch, 100)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: kwargs["local_dir"])
    assert main(["download", str(tmp_path / "m"), "--hallo3"]) == 2
    assert "hallo3/latest" in capsys.readouterr().err


def test_offline_says_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    import huggingface_hub.constants

    free_space(monkeypatch, 100)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["download", str(tmp_path / "m"), "--hallo3"]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "fudan-generative-ai/hallo3" in err and "then try again" in err


def test_hallo2_and_hallo3_are_one_or_the_other(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["download", str(tmp_path / "m"), "--hallo2", "--hallo3"])
    assert "not allowed with" in capsys.readouterr().err
