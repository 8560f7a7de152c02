"""The files of fudan-generative-ai/hallo3 that Hallo3 inference reads (SPEC-HALLO3 §1), for
`python -m hallo_pipeline download --hallo3`; fetching them is the shared `hallo_pipeline.download`.

Not fetched: `cogvideox-5b-i2v-sat/transformer/` (the ~11 GB CogVideoX base DiT, used only to start training)
and anything else of the repo inference does not read.
"""

from __future__ import annotations

from pathlib import Path

from ..download import fetch
from .family import FAMILY, SOURCE_REPO

HALLO3_REPO = SOURCE_REPO

# Pattern -> approximate bytes where SPEC-HALLO3 §1 gives a size (for the free-space check; the hub checks each
# file's exact size itself); None where it gives none (a few hundred MB together).
HALLO3_FILES: dict[str, int | None] = {
    "hallo3/latest": 1,  # text "1": names the iteration folder
    # 14,551,030,912 parameters in bfloat16 (the dtype is assumed, SPEC §1), about 29 GB.
    "hallo3/1/mp_rank_00_model_states.pt": 14_551_030_912 * 2,
    # 215,583,907 parameters; the stored dtype is not given, float32 is the larger guess.
    "cogvideox-5b-i2v-sat/vae/3d-vae.pt": 215_583_907 * 4,
    "t5-v1_1-xxl/*": 9_500_000_000,  # 2 safetensors shards, spiece.model, configs: 9.5 GB
    "wav2vec/wav2vec2-base-960h/*": None,
    "face_analysis/models/*": None,  # insightface antelopev2 ONNX + the face landmarker .task
}
VOCAL_SEPARATOR_FILES: dict[str, int | None] = {"audio_separator/Kim_Vocal_2.onnx": None}


def files(vocal_separator: bool = True) -> dict[str, int | None]:
    """Pattern -> approximate bytes (None: not known) of everything fetched."""
    return {**HALLO3_FILES, **(VOCAL_SEPARATOR_FILES if vocal_separator else {})}


def plan(vocal_separator: bool = True) -> list[tuple[str, list[str]]]:
    """(repo, file patterns) pairs for the chosen parts."""
    return [(HALLO3_REPO, list(files(vocal_separator)))]


def download(model_dir: str | Path, vocal_separator: bool = True) -> Path:
    """Fetch the files into `model_dir` (resuming what is there), then check the folder is found as Hallo3."""
    sizes = {pattern: size for pattern, size in files(vocal_separator).items() if size is not None}
    root = fetch(model_dir, plan(vocal_separator), sizes)
    FAMILY.locate(root).require(*FAMILY.required_parts(separate_vocals=vocal_separator))
    return root
