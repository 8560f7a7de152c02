"""The Hallo3 checkpoint: key tables, safe reading, the streamed pickle -> safetensors converter and its CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hallo_pipeline.cli import main
from hallo_pipeline.errors import CheckpointError, InputError
from hallo_pipeline.hallo3 import checkpoint
from hallo_pipeline.hallo3.checkpoint import (
    MAIN_PREFIX,
    REFERENCE_PREFIX,
    convert_checkpoint,
    find_weights,
    open_weights,
)
from hallo_pipeline.hallo3.key_table import KeyTable, WeightsFileError
from tests.conftest import REPO, SHARED


# ----------------------------------------------------------------------------------------------
# key tables
# ----------------------------------------------------------------------------------------------
def _table_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _shared_tsv() -> Path:
    path = Path(os.environ.get("HALLO3_KEYS_TSV", SHARED / "hallo3_keys.tsv"))
    if not path.is_file():
        pytest.skip(f"{path} not found: the official Hallo3 key list lives in ../shared (or set HALLO3_KEYS_TSV)")
    return path


def test_release_table_is_the_release() -> None:
    table = KeyTable.release()
    # every tensor belongs to the main or the reference DiT, and the two are the families SPEC §1 names
    main_keys, ref_keys = table.with_prefix(MAIN_PREFIX), table.with_prefix(REFERENCE_PREFIX)
    assert len(main_keys) + len(ref_keys) == len(table) and main_keys and ref_keys
    assert table.num_params == 14_551_030_912  # SPEC §1: the release's parameter count


def test_shared_tsv_is_the_packaged_release_table() -> None:
    path = _shared_tsv()
    shared = KeyTable.from_tsv(path)
    assert len(shared) == len(_table_lines(path))
    assert shared.shapes == KeyTable.release().shapes
    assert list(shared.shapes) == KeyTable.release().keys()


def _family(key: str) -> str:
    return re.sub(r"\.\d+\.", ".{i}.", key)


def test_fixture_table_has_the_release_key_families(hallo3_parity_path: Path) -> None:
    tiny = KeyTable.from_file(hallo3_parity_path / "models" / "hallo3_keys.json")
    families = list(dict.fromkeys(_family(k) for k in tiny.keys()))  # in order of first appearance
    assert families == list(dict.fromkeys(_family(k) for k in KeyTable.release().keys()))


@pytest.mark.parametrize("text, problem", [
    ("a.weight\t[2,3\tBF16\n", "line 1"),
    ("a.weight\t[2]\tBF16\na.weight\t[2]\tBF16\n", "listed twice"),
    ("a.weight [2] BF16\n", "tab-separated"),
    ("", "lists no tensors"),
])
def test_bad_tsv_tables_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "keys.tsv"
    path.write_text(text)
    with pytest.raises(WeightsFileError, match=re.escape(problem)) as info:
        KeyTable.from_file(path)
    assert str(path) in str(info.value)


def test_table_reports_every_kind_of_difference() -> None:
    table = KeyTable.from_shapes({"a": (2, 3), "b": (4,), "c": (1,)})
    problems = table.problems({"a": (2, 3), "b": (5,), "d": (1,)})
    assert problems == [
        "1 missing key, e.g. c",
        "1 unexpected key, e.g. d",
        "1 key of the wrong shape, e.g. b (5,) (expected (4,))",
    ]
    assert table.problems({"a": [2, 3], "b": (4,), "c": (1,)}) == []


# ----------------------------------------------------------------------------------------------
# the fixture's tiny checkpoint
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(hallo3_parity_path: Path):
    models = hallo3_parity_path / "models"
    folder = models / "hallo3" / "1"
    return {
        "pickle": folder / "mp_rank_00_model_states.pt",
        "safetensors": folder / "mp_rank_00_model_states.safetensors",
        "keys": models / "hallo3_keys.json",
        "table": KeyTable.from_file(models / "hallo3_keys.json"),
        "models": models,
    }


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_round_trip_equals_the_fixture_safetensors(tiny, tmp_path: Path) -> None:
    out = convert_checkpoint(tiny["pickle"], tmp_path / "model.safetensors", tiny["table"])
    converted = load_file(str(out))
    _assert_same_tensors(converted, load_file(str(tiny["safetensors"])))
    assert list(converted) == tiny["table"].keys()  # written in state-dict order
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


def test_memory_mapped_path_writes_the_same_bytes(tiny, tmp_path: Path, monkeypatch) -> None:
    """Torch versions that do not record where storages lie are copied from a memory-mapped load."""
    direct = convert_checkpoint(tiny["pickle"], tmp_path / "direct.safetensors", tiny["table"])
    assert all(s.file_offset is not None for s in checkpoint._plan(tiny["pickle"], tiny["table"]))
    monkeypatch.setattr(checkpoint, "_located", lambda name, t: None)
    assert all(s.tensor is not None for s in checkpoint._plan(tiny["pickle"], tiny["table"]))
    mapped = convert_checkpoint(tiny["pickle"], tmp_path / "mapped.safetensors", tiny["table"])
    assert direct.read_bytes() == mapped.read_bytes()


@pytest.mark.parametrize("kind", ["pickle", "safetensors"])
def test_open_weights_checks_and_yields_in_the_asked_dtype(tiny, kind: str) -> None:
    expected = load_file(str(tiny["safetensors"]))
    with open_weights(tiny[kind], tiny["table"]) as weights:
        assert weights.keys() == tiny["table"].keys()
        assert weights.dtypes == {k: v.dtype for k, v in expected.items()}
        ref = weights.state_dict(torch.float32, prefix=REFERENCE_PREFIX)
        main_names = [name for name, _ in weights.tensors(prefix=MAIN_PREFIX)]
    assert set(ref) == {k[len(REFERENCE_PREFIX):] for k in expected if k.startswith(REFERENCE_PREFIX)}
    assert all(t.dtype == torch.float32 for t in ref.values())
    assert all(torch.equal(t, expected[REFERENCE_PREFIX + k].float()) for k, t in ref.items())
    assert main_names == [k[len(MAIN_PREFIX):] for k in tiny["table"].keys() if k.startswith(MAIN_PREFIX)]


def test_find_weights_follows_the_tracker_and_prefers_safetensors(tiny, tmp_path: Path) -> None:
    assert find_weights(tiny["models"]) == tiny["safetensors"]
    folder = tmp_path / "hallo3" / "7"
    folder.mkdir(parents=True)
    (tmp_path / "hallo3" / "latest").write_text("7\n")
    (folder / "mp_rank_00_model_states.pt").write_bytes(b"x")
    assert find_weights(tmp_path) == folder / "mp_rank_00_model_states.pt"
    (tmp_path / "hallo3" / "latest").write_text("../../etc\n")
    with pytest.raises(WeightsFileError, match="should name an iteration folder"):
        find_weights(tmp_path)
    with pytest.raises(WeightsFileError, match=r"tracker file .*latest.* does not exist"):
        find_weights(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------
# bad files: each gets an InputError that names the file and what is wrong
# ----------------------------------------------------------------------------------------------
def _tiny_state(tiny) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_file(str(tiny["safetensors"])).items()}


def _save(state: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"module": state}, path)
    return path


def _every_reader(path: Path, table: KeyTable, tmp_path: Path):
    """Open and convert: both must refuse the same file with the same kind of message."""
    yield lambda: open_weights(path, table)
    if path.suffix != ".safetensors":
        yield lambda: convert_checkpoint(path, tmp_path / "out.safetensors", table)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_wrong_key(tiny, tmp_path: Path, suffix: str) -> None:
    state = _tiny_state(tiny)
    name = next(k for k in state if k.startswith(MAIN_PREFIX + "transformer.layers.0.face_attn"))
    state[name.replace("face_attn", "face_attention")] = state.pop(name)
    path = _save(state, tmp_path / f"renamed{suffix}")
    for read in _every_reader(path, tiny["table"], tmp_path):
        with pytest.raises(InputError) as info:
            read()
        message = str(info.value)
        assert str(path) in message and "1 missing key" in message and name in message
        assert "1 unexpected key" in message and name.replace("face_attn", "face_attention") in message
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_wrong_shape(tiny, tmp_path: Path, suffix: str) -> None:
    state = _tiny_state(tiny)
    name = MAIN_PREFIX + "transformer.audio_proj.proj1.weight"
    state[name] = state[name][:, :-1].contiguous()
    path = _save(state, tmp_path / f"reshaped{suffix}")
    expected = tiny["table"].shapes[name]
    for read in _every_reader(path, tiny["table"], tmp_path):
        with pytest.raises(InputError) as info:
            read()
        message = str(info.value)
        assert str(path) in message and "1 key of the wrong shape" in message
        assert f"{name} {tuple(state[name].shape)} (expected {expected})" in message


@pytest.mark.parametrize("kind", ["pickle", "safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(tiny, tmp_path: Path, kind: str, keep: float) -> None:
    data = tiny[kind].read_bytes()
    path = tmp_path / f"cut{tiny[kind].suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    for read in _every_reader(path, tiny["table"], tmp_path):
        with pytest.raises(InputError, match=r"is damaged or truncated.*download it again") as info:
            read()
        assert str(path) in str(info.value)
        assert isinstance(info.value, CheckpointError)
    assert not (tmp_path / "out.safetensors").exists()


def test_not_a_weights_file(tiny, tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(InputError, match="does not start like a PyTorch file"):
        open_weights(path, tiny["table"])
    path = tmp_path / "vae.pt"
    torch.save({"state_dict": {"encoder.conv_in.conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(InputError, match=r"has no 'module' entry \(found \['state_dict'\]\)"):
        open_weights(path, tiny["table"])


def test_safetensors_of_a_foreign_dtype_is_named(tiny, tmp_path: Path) -> None:
    state = _tiny_state(tiny)
    name = MAIN_PREFIX + "transformer.audio_proj.proj1.weight"
    state[name] = state[name].view(torch.uint16)
    path = _save(state, tmp_path / "odd.safetensors")
    with pytest.raises(InputError, match=r"odd\.safetensors.*holds tensors of type U16"):
        open_weights(path, tiny["table"])


class _RunsCode:
    """Unpickling this would run `touch <marker>`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CustomClass:
    def __init__(self):
        self.weight = torch.zeros(2)


@pytest.mark.parametrize("payload", ["reduce", "class"])
def test_code_carrying_pickle_is_refused(tiny, tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "ran"
    state = _tiny_state(tiny)
    extra = _RunsCode(marker) if payload == "reduce" else _CustomClass()
    path = tmp_path / "unsafe.pt"
    torch.save({"module": state, "extra": extra}, path)
    for read in _every_reader(path, tiny["table"], tmp_path):
        with pytest.raises(InputError, match="needs to run code to load") as info:
            read()
        message = str(info.value)
        assert str(path) in message and "refused" in message
        assert ("system" in message) if payload == "reduce" else ("_CustomClass" in message)
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


# ----------------------------------------------------------------------------------------------
# output handling
# ----------------------------------------------------------------------------------------------
def test_output_must_not_be_the_input_nor_exist(tiny, tmp_path: Path) -> None:
    source = tmp_path / "model.safetensors"  # a pickle under a safetensors name, converted onto itself
    source.write_bytes(tiny["pickle"].read_bytes())
    with pytest.raises(InputError, match="is the input file"):
        convert_checkpoint(source, source, tiny["table"], force=True)
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="exists; pass --force"):
        convert_checkpoint(tiny["pickle"], out, tiny["table"])
    assert out.read_bytes() == b"keep me"
    convert_checkpoint(tiny["pickle"], out, tiny["table"], force=True)
    _assert_same_tensors(load_file(str(out)), load_file(str(tiny["safetensors"])))
    with pytest.raises(InputError, match="must end in .safetensors"):
        convert_checkpoint(tiny["pickle"], tmp_path / "out.pt", tiny["table"])
    with pytest.raises(InputError, match="folder of output .* does not exist"):
        convert_checkpoint(tiny["pickle"], tmp_path / "no" / "out.safetensors", tiny["table"])


def test_interrupted_conversion_leaves_nothing(tiny, tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(tiny["pickle"], tmp_path / "out.safetensors", tiny["table"], progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_progress_reaches_the_file_size(tiny, tmp_path: Path) -> None:
    seen = []
    out = convert_checkpoint(tiny["pickle"], tmp_path / "out.safetensors", tiny["table"],
                             progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (out.stat().st_size, out.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# ----------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------
def test_cli_converts_and_refuses_to_overwrite(tiny, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny.safetensors"
    assert main(["convert-hallo3", str(tiny["pickle"]), str(out), "--keys", str(tiny["keys"])]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _assert_same_tensors(load_file(str(out)), load_file(str(tiny["safetensors"])))

    assert main(["convert-hallo3", str(tiny["pickle"]), str(out), "--keys", str(tiny["keys"])]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["convert-hallo3", str(tiny["pickle"]), str(out), "--keys", str(tiny["keys"]), "--force"]) == 0


def test_cli_writes_beside_the_pickle_by_default(tiny, tmp_path: Path) -> None:
    source = tmp_path / "mp_rank_00_model_states.pt"
    source.write_bytes(tiny["pickle"].read_bytes())
    command = [sys.executable, "-m", "hallo_pipeline", "convert-hallo3", str(source), "--keys", str(tiny["keys"])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {source.with_suffix('.safetensors')}"
    _assert_same_tensors(load_file(str(source.with_suffix(".safetensors"))), load_file(str(tiny["safetensors"])))


def test_cli_checks_against_the_release_table_by_default(tiny, tmp_path: Path, capsys) -> None:
    assert main(["convert-hallo3", str(tiny["pickle"]), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "does not match the Hallo3 release key table" in err and "for a model of other sizes" in err
    assert list(tmp_path.iterdir()) == []
