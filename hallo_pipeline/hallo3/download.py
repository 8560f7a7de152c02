"""The files of fudan-generative-ai/hallo3 that Hallo3 inference reads (SPEC-HALLO3 §1), one `RepoFile` each,
for `python -m hallo_pipeline download --hallo3`, the loader's `download_missing` and the model list.

Not fetched: `cogvideox-5b-i2v-sat/transformer/` (the ~11 GB CogVideoX base DiT, used only to start training)
and anything else of the repo inference does not read. Sizes are estimates from SPEC-HALLO3's parameter counts
(the repository's listing has not been checked); the T5 folder's file names are those of the CogVideoX release
it comes from (two shards and their index, the SentencePiece model, the config).
"""

from __future__ import annotations

from pathlib import Path

from ..download import GB, ByteProgress, RepoFile, fetch, separator_file, shared_files
from .family import FAMILY, SOURCE_REPO

HALLO3_REPO = SOURCE_REPO
T5 = "t5-v1_1-xxl"

HALLO3_FILES = [
    RepoFile(HALLO3_REPO, "hallo3/latest", 1, "Hallo3: names the checkpoint's iteration folder"),
    # 14,551,030,912 parameters in bfloat16 (the dtype is assumed, SPEC §1), about 29 GB.
    RepoFile(HALLO3_REPO, "hallo3/1/mp_rank_00_model_states.pt", 14_551_030_912 * 2,
             "Hallo3: main DiT, reference DiT, face and audio modules (bf16)"),
    # 215,583,907 parameters; the stored dtype is not given, float32 is the larger guess.
    RepoFile(HALLO3_REPO, "cogvideox-5b-i2v-sat/vae/3d-vae.pt", 215_583_907 * 4, "CogVideoX 3D VAE"),
    RepoFile(HALLO3_REPO, f"{T5}/config.json", 1_000, "T5-v1.1-XXL text encoder: config"),
    RepoFile(HALLO3_REPO, f"{T5}/model.safetensors.index.json", 20_000, "T5-v1.1-XXL text encoder: shard index"),
    RepoFile(HALLO3_REPO, f"{T5}/model-00001-of-00002.safetensors", int(5.0 * GB),
             "T5-v1.1-XXL text encoder: weights, shard 1"),
    RepoFile(HALLO3_REPO, f"{T5}/model-00002-of-00002.safetensors", int(4.5 * GB),
             "T5-v1.1-XXL text encoder: weights, shard 2"),
    RepoFile(HALLO3_REPO, f"{T5}/spiece.model", 800_000, "T5-v1.1-XXL text encoder: SentencePiece tokenizer"),
    *shared_files(HALLO3_REPO),
]
VOCAL_SEPARATOR = separator_file(HALLO3_REPO)


def files(vocal_separator: bool = True) -> list[RepoFile]:
    return [*HALLO3_FILES, *[VOCAL_SEPARATOR] * vocal_separator]


def download(model_dir: str | Path, vocal_separator: bool = True, progress: ByteProgress | None = None) -> Path:
    """Fetch the files into `model_dir` (resuming what is there), then check the folder is found as Hallo3."""
    root = fetch(model_dir, files(vocal_separator), progress)
    FAMILY.locate(root).require(*FAMILY.required_parts(separate_vocals=vocal_separator))
    return root
