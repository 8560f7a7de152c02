"""Fetch files of Hugging Face repos into a model folder, only when the user asks (`python -m hallo_pipeline
download`, or the loader node's `download_missing`); each family lists the files it reads (`hallo/download.py`,
`hallo3/download.py`), one `RepoFile` each, and `model_list.py` turns the same lists into ComfyUI-Manager's format.

huggingface_hub resumes interrupted downloads and checks each file's size against the size the hub announced
for it, keeping a file in the folder only when complete, so a partial file is never taken for a complete one.
What we check beforehand is the free space, from the sizes the lists give, so a 40 GB download does not stop at
90 % on a full disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import HalloError, InputError

GB = 1e9
MB = 1_000_000

# (bytes done, bytes in all) over every file a call fetches; the sizes of the lists are approximate, so the
# total is an estimate and each file moves the bar by its listed share. What it raises stops the download.
ByteProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class RepoFile:
    """One file of an official Hugging Face repo, kept at the same relative path in a model folder."""

    repo: str
    path: str
    size: int  # bytes, approximate (the free-space check, progress, the model list); the hub knows the exact size
    about: str  # what it is, in a few words (the model list's description)

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.path}"


def shared_files(repo: str) -> list[RepoFile]:
    """What every family's repo holds at the same paths and every run reads (`model_folder.ModelFolder`): wav2vec2
    (its features, not its tokenizer files) and the face models. Sizes: the face models as ComfyUI-Manager's list
    gives the antelopev2 files, the rest rounded up from parameter counts."""
    wav2vec, faces = "wav2vec/wav2vec2-base-960h", "face_analysis/models"
    return [
        RepoFile(repo, f"{wav2vec}/config.json", 2_000, "audio encoder (wav2vec2-base-960h): config"),
        RepoFile(repo, f"{wav2vec}/preprocessor_config.json", 1_000,
                 "audio encoder (wav2vec2-base-960h): feature extractor settings"),
        RepoFile(repo, f"{wav2vec}/model.safetensors", 378 * MB, "audio encoder (wav2vec2-base-960h): weights"),
        RepoFile(repo, f"{faces}/scrfd_10g_bnkps.onnx", 17 * MB, "insightface antelopev2: face detection"),
        RepoFile(repo, f"{faces}/glintr100.onnx", 261 * MB, "insightface antelopev2: face recognition (identity)"),
        RepoFile(repo, f"{faces}/1k3d68.onnx", 144 * MB, "insightface antelopev2: 3D landmarks"),
        RepoFile(repo, f"{faces}/2d106det.onnx", 5 * MB, "insightface antelopev2: 2D landmarks"),
        RepoFile(repo, f"{faces}/genderage.onnx", 2 * MB, "insightface antelopev2: gender and age"),
        RepoFile(repo, f"{faces}/face_landmarker_v2_with_blendshapes.task", 4 * MB,
                 "mediapipe Face Landmarker (478 landmarks: the face, lip and pose masks)"),
    ]


def separator_file(repo: str) -> RepoFile:
    return RepoFile(repo, "audio_separator/Kim_Vocal_2.onnx", 67 * MB,
                    "MDX-Net vocal separator (optional: separate_vocals)")


def missing(root: Path, files: Sequence[RepoFile]) -> list[RepoFile]:
    """The files not yet in `root` (huggingface_hub keeps a partial download elsewhere until it is complete)."""
    return [f for f in files if not (Path(root) / f.path).is_file()]


def check_free_space(root: Path, files: Sequence[RepoFile]) -> None:
    need = sum(f.size for f in files)
    free = shutil.disk_usage(root).free
    if need > free:
        raise InputError(
            f"the download needs about {need / GB:.1f} GB in {str(root)!r}, but only {free / GB:.1f} GB are free; "
            "free some space or choose a model folder on a larger disk", "dir",
        )


class _FileProgress:
    """One file's bytes as the caller's progress over all files (the file counts for at most its listed share);
    keeps what the caller's progress raised, which stops the download."""

    def __init__(self, progress: ByteProgress | None, start: int, share: int, total: int):
        self.progress, self.start, self.share, self.total = progress, start, share, total
        self.received = 0
        self.stopped: BaseException | None = None

    def __call__(self, n: int) -> None:
        self.received += n
        if self.progress is None:
            return
        try:
            self.progress(self.start + min(self.received, self.share), self.total)
        except BaseException as exc:
            self.stopped = exc
            raise


def _byte_counter(report: Callable[[int], None]):
    """A tqdm class for `hf_hub_download` that passes the bytes of a file to `report` instead of printing a bar."""
    from tqdm.auto import tqdm

    class ByteCounter(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n=1):
            report(int(n or 0))
            return super().update(n)

    return ByteCounter


def fetch(root: str | Path, files: Sequence[RepoFile], progress: ByteProgress | None = None) -> Path:
    """Every file of `files` that `root` lacks, one by one (from HF_ENDPOINT when set), after checking the free
    space."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - comes with diffusers/transformers
        raise HalloError("downloading needs huggingface_hub: pip install huggingface_hub") from exc

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    todo = missing(root, files)
    check_free_space(root, todo)
    total, before = sum(f.size for f in todo), 0
    for f in todo:
        report = _FileProgress(progress, before, f.size, total)
        try:
            hf_hub_download(f.repo, f.path, local_dir=str(root), tqdm_class=_byte_counter(report))
        except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not fetched"
            if report.stopped is not None:  # not a download error: the caller's own (the partial file resumes)
                raise report.stopped from None
            raise HalloError(
                f"could not download {f.path} from {f.repo} into {str(root)!r}: {str(exc).rstrip('.')}. "
                "Check the network (or HF_ENDPOINT / HF_HUB_OFFLINE), then try again (the same command, or the "
                "same prompt): finished files are kept and partial ones resume"
            ) from exc
        before += f.size
        if progress:
            progress(before, total)
    return root
