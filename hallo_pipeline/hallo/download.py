"""The files of the Hallo and Hallo2 releases a model folder needs (SPEC §1), one `RepoFile` each: what
`python -m hallo_pipeline download`, the loader's `download_missing` and the model list fetch or name.

Not listed: SD-1.5 and the motion module of the repo (every module they would initialise is overwritten by the
net). Sizes are approximate: the net from its element count (SPEC §2), the VAE from its parameter count.
"""

from __future__ import annotations

from pathlib import Path

from ..download import MB, ByteProgress, RepoFile, fetch, separator_file, shared_files

HALLO_REPO = "fudan-generative-ai/hallo"
HALLO2_REPO = "fudan-generative-ai/hallo2"

NET_BYTES = 2_424_802_964 * 2  # fp16
HALLO_NET = RepoFile(HALLO_REPO, "hallo/net.pth", NET_BYTES, "Hallo: all trained weights (fp16)")
HALLO2_NET = RepoFile(HALLO2_REPO, "hallo2/net.pth", NET_BYTES,
                      "Hallo2: all trained weights (fp16), motion modules tuned for long videos")
SUPPORT_FILES = [
    RepoFile(HALLO_REPO, "sd-vae-ft-mse/config.json", 1_000, "VAE (sd-vae-ft-mse): config"),
    RepoFile(HALLO_REPO, "sd-vae-ft-mse/diffusion_pytorch_model.safetensors", 335 * MB, "VAE (sd-vae-ft-mse): weights"),
    *shared_files(HALLO_REPO),
]
VOCAL_SEPARATOR = separator_file(HALLO_REPO)


def files(hallo: bool = True, hallo2: bool = False, vocal_separator: bool = True) -> list[RepoFile]:
    """The chosen nets, what both variants read besides them, and the vocal separator if asked for."""
    nets = [HALLO_NET] * hallo + [HALLO2_NET] * hallo2
    return [*nets, *SUPPORT_FILES, *[VOCAL_SEPARATOR] * vocal_separator]


def download(model_dir: str | Path, hallo: bool = True, hallo2: bool = False, vocal_separator: bool = True,
             progress: ByteProgress | None = None) -> Path:
    return fetch(model_dir, files(hallo, hallo2, vocal_separator), progress)
