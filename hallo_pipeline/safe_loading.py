"""Reading a torch pickle without running code, for every family's checkpoint reader.

`load_weights_only` is `torch.load(weights_only=True)`, memory-mapped where the file allows, with its
failures sorted into the two a user can act on: a file that asks to run code (refused, never run) and a
file that is damaged or not a weights file at all. Each family words the message for its own files
(`refused` and `damaged` build the errors it raises); what the file must hold is the family's to check.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

# torch.save writes a zip archive; files from before PyTorch 1.6 are a bare pickle, which starts
# with the PROTO opcode. Anything else cannot be a weights file, whatever its name.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80


def key_problems(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]) -> list[str]:
    """What differs between the tensor names -> shapes a network expects and those a file holds, one phrase per
    kind (missing, unexpected, wrong shape) with a few examples; empty when they agree."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k} {tuple(found[k])} (expected {tuple(expected[k])})"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    out = []
    if missing:
        out.append(f"{_count(missing, 'missing key')}, e.g. {_examples(missing)}")
    if unexpected:
        out.append(f"{_count(unexpected, 'unexpected key')}, e.g. {_examples(unexpected)}")
    if wrong:
        out.append(f"{_count(wrong, 'key')} of the wrong shape, e.g. {_examples(wrong)}")
    return out


def _count(items: Sequence, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _examples(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def first_line(exc: BaseException) -> str:
    """The line of an exception's text that says what went wrong (torch.load wraps it in advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if line.lower().startswith(("unsupported", "trying to load"))]
    return (telling or lines or [type(exc).__name__])[0][:200]


def refused_global(exc: pickle.UnpicklingError) -> str | None:
    """What a pickle the weights-only unpickler refused asks to run ("" when the message names no callable),
    or None when the complaint is about damaged bytes (unknown opcodes, a broken stack)."""
    text = str(exc)
    asked = re.search(r"GLOBAL ([\w.]+)", text)
    if asked:
        return asked.group(1)
    return "" if "unsupported global" in text.lower() else None


def load_weights_only(
    path: str | Path,
    map_location: str = "cpu",
    *,
    damaged: Callable[[str], Exception],
    refused: Callable[[str], Exception],
) -> object:
    """`torch.load(path, weights_only=True)`, memory-mapped when the file is a zip archive.

    `damaged(detail)` makes the error for a file that is not a readable torch pickle; `refused(name)` the
    one for a pickle that needs code to load (`name`: the callable it asks for, "" if unknown).
    `map_location="meta"` reads only the structure (names, shapes, dtypes).
    """
    import torch

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head == ZIP_MAGIC or head[:1] == bytes([PICKLE_PROTO])):
        raise damaged(f"it does not start like a PyTorch file: first bytes {head!r}")

    def load(mmap: bool):
        return torch.load(str(path), map_location=map_location, weights_only=True, mmap=mmap)

    try:
        try:
            return load(mmap=head == ZIP_MAGIC)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return load(mmap=False)  # legacy (non-zip) torch.save format cannot be memory-mapped
    except pickle.UnpicklingError as exc:
        asked = refused_global(exc)
        if asked is not None:
            raise refused(asked) from exc
        raise damaged(first_line(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - damaged bytes fail inside torch.load in many ways (IndexError, EOFError, ...)
        raise damaged(f"{type(exc).__name__}: {first_line(exc)}") from exc
