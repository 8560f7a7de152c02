"""Find, safely read and check the Hallo3 checkpoint; rewrite the release's pickle as safetensors.

The release ships its DiT as a 29 GB pickle, `hallo3/<iter>/mp_rank_00_model_states.pt` = `torch.save(
{'module': state_dict})` (SPEC §1). Pickles are only ever read with `torch.load(weights_only=True)`, so a
file that needs code to load is refused, never run. Every file is checked against a `KeyTable` (names and
shapes) before a tensor is handed out. `convert_checkpoint` streams the pickle into a `.safetensors`
file tensor by tensor, so it needs a few tens of MB of memory whatever the file's size.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch

from ..safe_loading import first_line, load_weights_only
from .key_table import RELEASE_SOURCE, KeyTable, WeightsFileError

CHECKPOINT_FOLDER = "hallo3"
TRACKER_FILE = "latest"  # SAT's tracker: a text file naming the iteration folder
CHECKPOINT_STEM = "mp_rank_00_model_states"
MAIN_PREFIX = "model.diffusion_model."
REFERENCE_PREFIX = "ref_model.diffusion_model."

_COPY_CHUNK = 16 << 20  # bytes per read/write while converting: bounds the converter's memory

# safetensors' names for torch dtypes (https://github.com/huggingface/safetensors, format section)
_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}


# ----------------------------------------------------------------------------------------------
# finding the file
# ----------------------------------------------------------------------------------------------
def find_weights(model_dir: str | Path) -> Path:
    """The checkpoint inside a model folder laid out like the Hugging Face repo: `hallo3/latest` names the
    iteration folder; its `.safetensors` copy is preferred to the release's pickle."""
    folder = Path(model_dir) / CHECKPOINT_FOLDER
    tracker = folder / TRACKER_FILE
    fetch = f"get {RELEASE_SOURCE} (with hallo3/latest) and keep the repo's layout under your model folder"
    if not tracker.is_file():
        raise WeightsFileError(f"Hallo3 tracker file {str(tracker)!r} does not exist; {fetch}", tracker)
    iteration = tracker.read_text(encoding="utf-8", errors="replace").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", iteration) or iteration in (".", ".."):
        raise WeightsFileError(
            f"Hallo3 tracker file {str(tracker)!r} should name an iteration folder (the release's says 1) but "
            f"holds {iteration[:40]!r}; {fetch}", tracker,
        )
    base = folder / iteration / CHECKPOINT_STEM
    candidates = [base.with_suffix(".safetensors"), base.with_suffix(".pt")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise WeightsFileError(
        f"no Hallo3 checkpoint found; looked for {' and '.join(repr(str(c)) for c in candidates)}; {fetch}", base,
    )


# ----------------------------------------------------------------------------------------------
# reading pickles safely
# ----------------------------------------------------------------------------------------------
def _damaged(path: Path, detail: str) -> WeightsFileError:
    return WeightsFileError(
        f"weights file {str(path)!r} is damaged or truncated, or not a weights file at all ({detail}); "
        "download it again", path,
    )


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise WeightsFileError(f"weights file {str(path)!r} does not exist; {RELEASE_SOURCE} is the one to get", path)
    if path.stat().st_size == 0:
        raise WeightsFileError(f"weights file {str(path)!r} is empty (an interrupted download?); download it again",
                               path)


def load_pickle(path: str | Path, entry: str, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """`torch.load(path, weights_only=True)[entry]`, memory-mapped, checked to be a flat dict of tensors.

    `map_location="meta"` reads only the structure (names, shapes, dtypes, where each tensor's bytes are).
    """
    path = Path(path)
    _check_file(path)

    def refused(asked: str) -> WeightsFileError:
        asks = f" (it asks for {asked})" if asked else ""
        return WeightsFileError(
            f"weights file {str(path)!r} is a pickle that needs to run code to load{asks}, so it was refused: "
            f"only plain tensors are read, for safety. Use {RELEASE_SOURCE} or a .safetensors copy of it", path,
        )

    data = load_weights_only(path, map_location, damaged=lambda detail: _damaged(path, detail), refused=refused)
    if not isinstance(data, Mapping) or entry not in data:
        found = sorted(map(str, data))[:5] if isinstance(data, Mapping) else type(data).__name__
        raise WeightsFileError(
            f"weights file {str(path)!r} has no {entry!r} entry (found {found}), so it is not the expected "
            f"checkpoint; use {RELEASE_SOURCE}", path,
        )
    state = data[entry]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsFileError(
            f"weights file {str(path)!r}: its {entry!r} entry is not a dict of named tensors; use {RELEASE_SOURCE}",
            path,
        )
    return dict(state)


# ----------------------------------------------------------------------------------------------
# opening a checkpoint (safetensors or the release's pickle), checked
# ----------------------------------------------------------------------------------------------
class Hallo3Weights:
    """An opened checkpoint whose names and shapes agree with its key table. Tensors come out one at a
    time, in the table's order, in the dtype asked for; the file stays memory-mapped until `close()`."""

    def __init__(self, path: Path, table: KeyTable, get: Callable[[str], torch.Tensor],
                 dtypes: Mapping[str, torch.dtype], close: Callable[[], None] = lambda: None):
        self.path, self.table, self.dtypes = path, table, dict(dtypes)
        self._get, self._close = get, close

    def keys(self) -> list[str]:
        return self.table.keys()

    def tensor(self, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        t = self._get(name)
        return t if dtype is None else t.to(dtype)

    def tensors(self, dtype: torch.dtype | None = None, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
        """(name without `prefix`, tensor) for every key under `prefix`, e.g. `MAIN_PREFIX`."""
        for name in self.table.with_prefix(prefix):
            yield name[len(prefix):], self.tensor(name, dtype)

    def state_dict(self, dtype: torch.dtype | None = None, prefix: str = "") -> dict[str, torch.Tensor]:
        return dict(self.tensors(dtype, prefix))

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Hallo3Weights:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_weights(path: str | Path, table: KeyTable | None = None) -> Hallo3Weights:
    """Open a `.safetensors` checkpoint (memory-mapped) or the release's pickle (`{'module': ...}`) and check
    every name and shape against `table` (default: the release's) before anything is read."""
    path = Path(path)
    table = table or KeyTable.release()
    if path.suffix == ".safetensors":
        return _open_safetensors(path, table)
    state = load_pickle(path, "module")
    table.check({k: v.shape for k, v in state.items()}, path)
    return Hallo3Weights(path, table, state.__getitem__, {k: v.dtype for k, v in state.items()})


def _open_safetensors(path: Path, table: KeyTable) -> Hallo3Weights:
    from safetensors import SafetensorError, safe_open

    _check_file(path)
    stack = contextlib.ExitStack()
    try:
        f = stack.enter_context(safe_open(str(path), "pt"))
        slices = {k: f.get_slice(k) for k in f.keys()}
        shapes = {k: tuple(s.get_shape()) for k, s in slices.items()}
        dtype_names = {k: s.get_dtype() for k, s in slices.items()}
    except (SafetensorError, OSError, ValueError) as exc:
        stack.close()
        raise _damaged(path, first_line(exc)) from exc
    try:
        table.check(shapes, path)
        dtypes = {k: _torch_dtype(name, path) for k, name in dtype_names.items()}
    except WeightsFileError:
        stack.close()
        raise
    return Hallo3Weights(path, table, f.get_tensor, dtypes, stack.close)


def _torch_dtype(name: str, path: Path) -> torch.dtype:
    for dtype, st_name in _SAFETENSORS_DTYPES.items():
        if st_name == name.upper():
            return dtype
    raise WeightsFileError(f"weights file {str(path)!r} holds tensors of type {name}, which no Hallo3 model uses", path)


# ----------------------------------------------------------------------------------------------
# converting pickle -> safetensors, streamed
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """Where one tensor's bytes are: a byte range of the pickle file, or a (memory-mapped) tensor."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    nbytes: int
    file_offset: int | None = None
    tensor: torch.Tensor | None = None


def check_output(source: Path, output: Path, force: bool) -> None:
    """Refuse an output that is the input, that exists (unless `force`), or that is not a .safetensors name."""
    if output.suffix != ".safetensors":
        raise WeightsFileError(f"output {str(output)!r} must end in .safetensors", output)
    if output.resolve() == source.resolve() or (output.exists() and source.exists() and output.samefile(source)):
        raise WeightsFileError(f"output {str(output)!r} is the input file; give another name", output)
    if output.is_dir():
        raise WeightsFileError(f"output {str(output)!r} is a folder; give a file name ending in .safetensors", output)
    if output.exists() and not force:
        raise WeightsFileError(f"output {str(output)!r} exists; pass --force to replace it", output)
    if not output.parent.is_dir():
        raise WeightsFileError(f"the folder of output {str(output)!r} does not exist; create it first", output)


def convert_checkpoint(
    source: str | Path,
    output: str | Path,
    table: KeyTable | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Check the release's pickle against `table` (default: the release's) and write the same tensors, same
    dtypes, to `output` (.safetensors), streamed: under a temporary name, renamed when complete.

    `progress(bytes_done, bytes_total)` is called as the data is copied.
    """
    source, output = Path(source), Path(output)
    table = table or KeyTable.release()
    check_output(source, output, force)
    sources = _plan(source, table)
    header = _header(sources, source)
    total = len(header) + sum(s.nbytes for s in sources)
    free = shutil.disk_usage(output.parent).free
    if free < total:
        raise WeightsFileError(
            f"output {str(output)!r} needs {total / 1e9:.2f} GB but its disk has {free / 1e9:.2f} GB free; "
            "free some space or write elsewhere", output,
        )
    fd, tmp_name = tempfile.mkstemp(prefix=output.name + ".", suffix=".partial", dir=output.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(header)
            _copy_data(source, sources, out, len(header), total, progress)
            out.flush()
            os.fsync(out.fileno())
        _verify(tmp, sources)
        os.replace(tmp, output)
    except BaseException:  # an interrupt (Ctrl-C, SIGTERM) too: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        raise
    return output


def _plan(source: Path, table: KeyTable) -> list[_Source]:
    """The tensors in the file's order, checked against the table, with where to read each one's bytes.

    Loading on the meta device reads only the pickle's structure; torch then records where each storage's
    bytes begin in the zip archive (`_checkpoint_offset`), which lets us copy them with plain file reads:
    the memory used stays at one buffer, not the file's size. Torch versions or files without that
    record (legacy non-zip pickles, other byte orders) are copied from a memory-mapped load instead.
    """
    meta = load_pickle(source, "module", map_location="meta")
    table.check({k: v.shape for k, v in meta.items()}, source)
    plan = [_located(name, t) for name, t in meta.items()]
    file_size = source.stat().st_size
    if all(p is not None for p in plan) and _little_endian(source):
        if any(p.file_offset + p.nbytes > file_size for p in plan):
            raise _damaged(source, "a tensor's data lies past the end of the file")
        return plan
    mapped = load_pickle(source, "module")
    return [
        _Source(name, t.dtype, tuple(t.shape), t.numel() * t.element_size(), tensor=t) for name, t in mapped.items()
    ]


def _located(name: str, t: torch.Tensor) -> _Source | None:
    offset = getattr(t.untyped_storage(), "_checkpoint_offset", None)
    if not isinstance(offset, int) or not t.is_contiguous():
        return None
    start = offset + t.storage_offset() * t.element_size()
    return _Source(name, t.dtype, tuple(t.shape), t.numel() * t.element_size(), file_offset=start)


def _little_endian(source: Path) -> bool:
    """torch.save records the writer's byte order (`<archive>/byteorder`); safetensors is little-endian."""
    import zipfile

    try:
        with zipfile.ZipFile(source) as z:
            names = [n for n in z.namelist() if n.endswith("/byteorder")]
            return not names or z.read(names[0]).strip() == b"little"
    except zipfile.BadZipFile:
        return False


def _header(sources: list[_Source], source: Path) -> bytes:
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for s in sources:
        if s.dtype not in _SAFETENSORS_DTYPES:
            raise WeightsFileError(
                f"weights file {str(source)!r}: tensor {s.name} has type {s.dtype}, which safetensors cannot store",
                source,
            )
        entries[s.name] = {"dtype": _SAFETENSORS_DTYPES[s.dtype], "shape": list(s.shape),
                           "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format allows space padding; 8-byte alignment of the data
    return struct.pack("<Q", len(text)) + text


def _copy_data(source: Path, sources: list[_Source], out, done: int, total: int,
               progress: Callable[[int, int], None] | None) -> None:
    view = memoryview(bytearray(min(_COPY_CHUNK, max((s.nbytes for s in sources), default=0))))
    with open(source, "rb") as f:
        for s in sources:
            if s.file_offset is not None:
                f.seek(s.file_offset)
                left = s.nbytes
                while left:
                    n = f.readinto(view[: min(left, _COPY_CHUNK)])
                    if not n:
                        raise _damaged(source, f"the data of {s.name} ends early")
                    out.write(view[:n])
                    left -= n
                    done += n
                    if progress:
                        progress(done, total)
            else:
                flat = (s.tensor if s.tensor.is_contiguous() else s.tensor.contiguous()).reshape(-1)
                data = memoryview(flat.view(torch.uint8).numpy()) if s.nbytes else memoryview(b"")
                for start in range(0, s.nbytes, _COPY_CHUNK):
                    chunk = data[start: start + _COPY_CHUNK]
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)


def _verify(path: Path, sources: list[_Source]) -> None:
    """Read back the header the way every loader will, before the file gets its final name."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        written = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    expected = {s.name: (s.shape, _SAFETENSORS_DTYPES[s.dtype]) for s in sources}
    if written != expected:
        raise WeightsFileError(f"the converted file {str(path)!r} does not read back as written; report this", path)
