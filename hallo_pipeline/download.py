"""Fetch files of Hugging Face repos into a model folder, only when the user asks (`python -m hallo_pipeline
download`); each family lists which files it reads (`hallo/download.py`, `hallo3/download.py`).

huggingface_hub resumes interrupted downloads and checks each file's size against the repository's record, so
a partial file is never taken for a complete one. What we check beforehand is the free space, from the sizes a
family knows, so a 40 GB download does not stop at 90 % on a full disk.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from .errors import HalloError, InputError

GB = 1e9


def missing_bytes(root: Path, sizes: Mapping[str, int]) -> int:
    """Bytes still to fetch for the patterns of known size (`sizes`: pattern -> bytes, approximate): each
    pattern's size less what its files in `root` already hold (a resumed download only fetches the rest)."""
    total = 0
    for pattern, size in sizes.items():
        present = sum(Path(p).stat().st_size for p in glob.glob(str(root / pattern)) if Path(p).is_file())
        total += max(size - present, 0)
    return total


def check_free_space(root: Path, sizes: Mapping[str, int]) -> None:
    need = missing_bytes(root, sizes)
    free = shutil.disk_usage(root).free
    if need > free:
        raise InputError(
            f"the download needs about {need / GB:.1f} GB in {str(root)!r}, but only {free / GB:.1f} GB are free; "
            "free some space or choose a model folder on a larger disk", "dir",
        )


def fetch(root: str | Path, jobs: Sequence[tuple[str, Sequence[str]]], sizes: Mapping[str, int] | None = None
          ) -> Path:
    """Every (repo, file patterns) job into `root`, after checking the free space for the files of known size."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with diffusers/transformers
        raise HalloError("downloading needs huggingface_hub: pip install huggingface_hub") from exc

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    if sizes:
        check_free_space(root, sizes)
    for repo, patterns in jobs:
        try:
            snapshot_download(repo_id=repo, allow_patterns=list(patterns), local_dir=str(root))
        except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not fetched"
            raise HalloError(
                f"could not download {', '.join(patterns)} from {repo} into {str(root)!r}: {exc}. "
                "Check the network (or HF_ENDPOINT / HF_HUB_OFFLINE), then run the same command again: "
                "finished files are kept and partial ones resume"
            ) from exc
    return root
