"""The files of the Hallo and Hallo2 releases a model folder needs (`python -m hallo_pipeline download`);
fetching them is the shared `hallo_pipeline.download`."""

from __future__ import annotations

from pathlib import Path

from ..download import fetch

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
    return fetch(model_dir, plan(hallo, hallo2, vocal_separator))
