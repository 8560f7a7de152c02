"""What the fp8 drift benchmarks (hallo_fp8_drift.py, hallo3_fp8_drift.py) share: how far one set of outputs lies
from another, and writing the result as <out>.json and <out>.md with the command that made it."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch


def compare(reference: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per output of `other`: the largest absolute difference from `reference`'s tensor of that name, the rms
    difference and that rms relative to the reference's rms."""
    rows = {}
    for name, actual in other.items():
        ref = reference[name].double()
        diff = actual.double() - ref
        rms_ref = ref.pow(2).mean().sqrt().item()
        rms = diff.pow(2).mean().sqrt().item()
        rows[name] = {"max_abs": diff.abs().max().item(), "rms": rms, "rms_relative": rms / rms_ref,
                      "rms_reference": rms_ref}
    return rows


def write(out: Path, module: str, argv: list[str] | None, result: dict, markdown: Callable[[dict, str], str]) -> None:
    """`result` (plus the command) as JSON and `markdown(result, command)` beside it; `argv`: main's arguments, None
    for the command line's own."""
    command = " ".join([f"python -m {module}", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": command, **result}, indent=1))
    out.with_suffix(".md").write_text(markdown(result, command))
