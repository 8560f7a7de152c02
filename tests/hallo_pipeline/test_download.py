"""The shared downloader against a stand-in hub on 127.0.0.1 (tests/hub_server.py): huggingface_hub's real
download code runs, our progress reports its bytes, a cut transfer is caught by the size check and leaves no
file behind, files already there are not fetched again, and a full disk stops before the first request."""

from __future__ import annotations

from collections import namedtuple

import pytest

import hallo_pipeline.download as shared
from hallo_pipeline.download import RepoFile, fetch
from hallo_pipeline.errors import HalloError, InputError
from tests.hub_server import hub

REPO = "org/models"
SERVED = {f"{REPO}/a/weights.bin": bytes(range(250)) * 12_000, f"{REPO}/b/config.json": b'{"x": 1}'}  # 3 MB
FILES = [RepoFile(REPO, "a/weights.bin", 3_000_000, "weights"), RepoFile(REPO, "b/config.json", 10, "config")]
Usage = namedtuple("Usage", "total used free")


def test_fetches_each_file_with_its_bytes_reported(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 2**20)  # 10 MiB: a test file in 3 chunks
    seen = []
    with hub(monkeypatch, SERVED) as requests:
        fetch(tmp_path, FILES, lambda done, total: seen.append((done, total)))
    for f in FILES:
        assert (tmp_path / f.path).read_bytes() == SERVED[f"{REPO}/{f.path}"]
    assert [r for r in requests if r.startswith("GET")] == [f"GET {REPO}/a/weights.bin", f"GET {REPO}/b/config.json"]
    total = 3_000_010
    assert {t for _, t in seen} == {total} and seen[-1] == (total, total)
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) >= 3  # the big file moves the bar before it is complete
    assert any(0 < d < 3_000_000 for d in done)


def test_a_cut_transfer_fails_the_size_check_and_the_next_run_completes(tmp_path, monkeypatch) -> None:
    with hub(monkeypatch, SERVED, short={f"{REPO}/a/weights.bin"}):
        with pytest.raises(HalloError, match=r"(?s)could not download a/weights.bin from org/models .*size .*"
                                             r"then try again \(the same command"):
            fetch(tmp_path, FILES)
    assert not (tmp_path / "a" / "weights.bin").exists()  # never taken for a complete file
    with hub(monkeypatch, SERVED):
        fetch(tmp_path, FILES)
    assert (tmp_path / "a" / "weights.bin").stat().st_size == len(SERVED[f"{REPO}/a/weights.bin"])


def test_files_already_there_are_not_fetched_again(tmp_path, monkeypatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "weights.bin").write_bytes(b"mine")
    with hub(monkeypatch, SERVED) as requests:
        fetch(tmp_path, FILES)
    assert [r for r in requests if r.startswith("GET")] == [f"GET {REPO}/b/config.json"]
    assert (tmp_path / "a" / "weights.bin").read_bytes() == b"mine"


def test_a_full_disk_stops_before_the_first_request(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shared.shutil, "disk_usage", lambda path: Usage(10**12, 0, 1_000_000))
    with hub(monkeypatch, SERVED) as requests:
        with pytest.raises(InputError, match=r"needs about 0.0 GB .* only 0.0 GB are free"):
            fetch(tmp_path, FILES)
    assert requests == []


def test_a_missing_file_on_the_hub_names_it(tmp_path, monkeypatch) -> None:
    with hub(monkeypatch, {}):
        with pytest.raises(HalloError, match=r"could not download a/weights.bin from org/models"):
            fetch(tmp_path, FILES)
