"""The key table a Hallo3 checkpoint is checked against: every tensor name and its shape, in order.

The release's table is our own networks' at the released sizes, built on the `meta` device (no memory);
a test checks it against `../shared/hallo3_keys.tsv` (SPEC §1-2: one line per tensor,
`key<TAB>shape as a JSON list<TAB>dtype`, state-dict order), the format `from_tsv` reads. Tiny test
models bring their own, as the fixture sets' `models/hallo3_keys.json` (`{key: [shape, dtype]}`), or
build one from a model's state dict with `KeyTable.from_shapes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import CheckpointError, InputError
from ..safe_loading import key_problems

RELEASE_SOURCE = "hallo3/1/mp_rank_00_model_states.pt of the Hugging Face repo fudan-generative-ai/hallo3"


class WeightsFileError(CheckpointError, InputError):
    """A weights or key-table file the user gave cannot be used (missing, damaged, unsafe, another model).

    It is an `InputError` (the message names the file and the fix; `input` is the file's path) and a
    `CheckpointError`, which is what the library's loaders raise for model files.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message, input=None if path is None else str(path))


Shape = tuple[int, ...]


@dataclass(frozen=True)
class KeyTable:
    """Tensor names -> shapes (and the dtype the table states, for information: the check is on names
    and shapes, because the release's dtypes are assumed, SPEC §1). `name` says where it came from."""

    shapes: Mapping[str, Shape]
    dtypes: Mapping[str, str]
    name: str

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def release(cls) -> KeyTable:
        """The released Hallo3 checkpoint's table (2,238 tensors, full size): the networks of the released
        config, whose names are the checkpoint's (names and shapes; no dtypes, which the release only assumes)."""
        from .config import Hallo3Config
        from .model import checkpoint_shapes

        return cls.from_shapes(checkpoint_shapes(Hallo3Config()), name="the Hallo3 release key table")

    @classmethod
    def from_file(cls, path: str | Path) -> KeyTable:
        """A `.tsv` (release format) or `.json` (fixture format) table."""
        path = Path(path)
        if path.suffix == ".tsv":
            return cls.from_tsv(path)
        if path.suffix == ".json":
            return cls.from_json(path)
        raise WeightsFileError(f"key table {str(path)!r} is neither a .tsv nor a .json table; give one of those", path)

    @classmethod
    def from_tsv(cls, path: str | Path, name: str | None = None) -> KeyTable:
        path = Path(path)
        shapes: dict[str, Shape] = {}
        dtypes: dict[str, str] = {}
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            try:
                if len(fields) not in (2, 3):
                    raise ValueError(f"{len(fields)} tab-separated fields, expected key, shape and dtype")
                key, shape = fields[0], _shape(json.loads(fields[1]))
            except ValueError as exc:
                raise WeightsFileError(f"key table {str(path)!r}, line {number}: {exc}; fix or replace the file",
                                       path) from None
            if key in shapes:
                raise WeightsFileError(f"key table {str(path)!r}, line {number}: {key!r} is listed twice", path)
            shapes[key] = shape
            if len(fields) == 3:
                dtypes[key] = fields[2].strip()
        return cls._checked(shapes, dtypes, name or f"key table {str(path)!r}", path)

    @classmethod
    def from_json(cls, path: str | Path, name: str | None = None) -> KeyTable:
        path = Path(path)
        try:
            data = json.loads(_read_text(path))
            if not isinstance(data, dict):
                raise ValueError("it is not a JSON object {key: [shape, dtype]}")
            shapes, dtypes = {}, {}
            for key, entry in data.items():
                if not isinstance(entry, list) or not entry:
                    raise ValueError(f"the entry of {key!r} is not [shape, dtype]")
                shapes[key] = _shape(entry[0])
                if len(entry) > 1:
                    dtypes[key] = str(entry[1])
        except ValueError as exc:
            raise WeightsFileError(f"key table {str(path)!r} cannot be read ({exc}); fix or replace the file",
                                   path) from None
        return cls._checked(shapes, dtypes, name or f"key table {str(path)!r}", path)

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[int]], name: str = "the model's key table") -> KeyTable:
        """From any name -> shape mapping, e.g. `{k: v.shape for k, v in model.state_dict().items()}`
        of a model built on the meta device."""
        return cls({k: tuple(int(n) for n in v) for k, v in shapes.items()}, {}, name)

    @classmethod
    def _checked(cls, shapes: dict, dtypes: dict, name: str, path: Path) -> KeyTable:
        if not shapes:
            raise WeightsFileError(f"key table {str(path)!r} lists no tensors; fix or replace the file", path)
        return cls(shapes, dtypes, name)

    # --- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.shapes)

    def __contains__(self, key: object) -> bool:
        return key in self.shapes

    def keys(self) -> list[str]:
        return list(self.shapes)

    @property
    def num_params(self) -> int:
        total = 0
        for shape in self.shapes.values():
            count = 1
            for n in shape:
                count *= n
            total += count
        return total

    def with_prefix(self, prefix: str) -> list[str]:
        return [k for k in self.shapes if k.startswith(prefix)]

    # --- checking -----------------------------------------------------------------------------
    def problems(self, found: Mapping[str, Sequence[int]]) -> list[str]:
        """What differs between `found` (name -> shape) and the table; empty when they agree."""
        return key_problems(self.shapes, found)

    def check(self, found: Mapping[str, Sequence[int]], path: str | Path) -> None:
        """Raise a `WeightsFileError` naming the file and every kind of difference."""
        problems = self.problems(found)
        if not problems:
            return
        raise WeightsFileError(
            f"weights file {str(path)!r} does not match {self.name} ({len(self)} tensors; the file has "
            f"{len(found)}): {'; '.join(problems)}. Use {RELEASE_SOURCE}, complete and unchanged; for a model "
            "of other sizes give its own key table",
            path,
        )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WeightsFileError(f"key table {str(path)!r} does not exist; give an existing .tsv or .json table",
                               path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsFileError(f"key table {str(path)!r} cannot be read ({exc}); give a text table", path) from None


def _shape(value: object) -> Shape:
    if not isinstance(value, list) or not all(isinstance(n, int) and n >= 0 for n in value):
        raise ValueError(f"shape {value!r} is not a list of sizes")
    return tuple(value)
