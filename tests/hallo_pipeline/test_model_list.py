"""web/model-list.json: the families' download lists in ComfyUI-Manager's model-list format, kept in sync."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from hallo_pipeline.families import FAMILIES
from hallo_pipeline.model_list import MODELS_SUBFOLDER, model_list, render

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "web" / "model-list.json"
# The keys of every entry of ComfyUI-Manager's own model-list.json.
MANAGER_KEYS = {"name", "type", "base", "save_path", "description", "reference", "filename", "url", "size"}


def test_the_shipped_list_is_what_the_download_lists_make() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == render(), (
        "web/model-list.json is out of date: python -m hallo_pipeline model-list web/model-list.json")


def test_entries_read_as_the_manager_reads_them() -> None:
    entries = json.loads(SHIPPED.read_text(encoding="utf-8"))["models"]
    assert entries and all(set(e) == MANAGER_KEYS and all(isinstance(v, str) and v for v in e.values())
                           for e in entries)
    for e in entries:
        # The installer refuses a filename with a separator and saves under models/<save_path>/<filename>.
        assert not set("/\\:") & set(e["filename"]), e
        assert ".." not in e["save_path"] and not e["save_path"].startswith("/"), e
        relative = posixpath.relpath(posixpath.join(e["save_path"], e["filename"]), MODELS_SUBFOLDER)
        assert e["url"] == f"{e['reference']}/resolve/main/{relative}", e
    keys = [(e["save_path"], e["base"], e["filename"]) for e in entries]  # what its whitelist check compares
    assert len(set(keys)) == len(keys)


def test_every_variants_files_are_listed_once() -> None:
    listed = [posixpath.relpath(posixpath.join(e["save_path"], e["filename"]), MODELS_SUBFOLDER)
              for e in model_list()["models"]]
    assert len(listed) == len(set(listed))
    for family in FAMILIES:
        for variant in family.variants:
            assert {f.path for f in family.official_files(variant)} <= set(listed), variant
    assert {"hallo/net.pth", "hallo2/net.pth", "hallo3/1/mp_rank_00_model_states.pt",
            "audio_separator/Kim_Vocal_2.onnx"} <= set(listed)


def test_the_command_writes_the_list(tmp_path, capsys) -> None:
    from hallo_pipeline.cli import main

    assert main(["model-list", str(tmp_path / "list.json")]) == 0
    assert (tmp_path / "list.json").read_text(encoding="utf-8") == render()
    assert main(["model-list"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == model_list()
