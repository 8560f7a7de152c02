"""Fetch the official files into a model folder, only when the user asks (`python -m hallo_pipeline download`).

huggingface_hub resumes interrupted downloads and checks each file's size against the
repository's record, so a partial file is never taken for a complete one.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HalloError

HALLO_REPO = "fudan-generative-ai/hallo"
HALLO2_REPO = "fudan-generative-ai/hallo2"

# What we use from the Hallo repo (SPEC §1); SD-1.5 and the motion module are not needed.
HALLO_FILES = [
    "hallo/net.pth",
    "sd-vae-ft-mse/*",
    "wav2vec/wav2vec2-base-960h/*",
    "face_analysis/models/*",
]
VOCAL_SEPARATOR_FILES = ["audio_separator/Kim_Vocal_2.onnx"]
HALLO2_FILES = ["hallo2/net.pth"]


def plan(hallo: bool = True, hallo2: bool = False, vocal_separator: bool = True) -> list[tuple[str, list[str]]]:
    """(repo, file patterns) pairs for the chosen parts."""
    jobs = []
    if hallo or vocal_separator:
        patterns = (HALLO_FILES if hallo else []) + (VOCAL_SEPARATOR_FILES if vocal_separator else [])
        jobs.append((HALLO_REPO, patterns))
    if hallo2:
        jobs.append((HALLO2_REPO, HALLO2_FILES))
    return jobs


def download(model_dir: str | Path, hallo: bool = True, hallo2: bool = False, vocal_separator: bool = True) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with diffusers/transformers
        raise HalloError("downloading needs huggingface_hub: pip install huggingface_hub") from exc

    root = Path(model_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for repo, patterns in plan(hallo, hallo2, vocal_separator):
        try:
            snapshot_download(repo_id=repo, allow_patterns=patterns, local_dir=str(root))
        except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not fetched"
            raise HalloError(
                f"could not download {', '.join(patterns)} from {repo} into {str(root)!r}: {exc}. "
                "Check the network (or HF_ENDPOINT / HF_HUB_OFFLINE), then run the same command again: "
                "finished files are kept and partial ones resume"
            ) from exc
    return root
