"""The Hallo3 family as the seam (`hallo_pipeline.families`) sees it: its folder layout (`SPEC-HALLO3.md` §1)
is found and checked; generating with it is not wired into a pipeline yet (issue #13), which every run says.

Cheap to import: the checkpoint reader is imported when a folder is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ..errors import InputError
from ..model_folder import ModelFolder

SOURCE_REPO = "fudan-generative-ai/hallo3"


@dataclass(frozen=True)
class Hallo3Files(ModelFolder):
    root: Path
    weights: Path  # hallo3/<iteration>/mp_rank_00_model_states.safetensors, or the release's .pt
    variant: str = "hallo3"
    note: str = ""

    def describe(self) -> str:
        return f"Hallo3 weights {self.weights}" + (f" ({self.note})" if self.note else "")

    def fetch_hint(self) -> str:
        return (f"Fetch them with: python -m hallo_pipeline download {self.root} --hallo3 (the files of the Hugging "
                f"Face repo {SOURCE_REPO} that inference reads, in the repo's layout)")

    @property
    def vae(self) -> Path:
        from .vae import VAE_FILE

        return self.root / VAE_FILE

    @property
    def t5(self) -> Path:
        from .text import T5_DIR

        return self.root / T5_DIR

    def parts(self) -> dict[str, Path]:
        """The parts `require` knows: "vae", "t5", "wav2vec", "face_models", "vocal_separator"."""
        return {"vae": self.vae, "t5": self.t5 / "config.json", **super().parts()}


class Hallo3Family:
    """CogVideoX-5B DiT + identity reference bank + face/audio cross-attention, 480x720, 49-frame segments."""

    name = "Hallo3"
    variants = {"hallo3": "hallo3/latest + hallo3/<iteration>/mp_rank_00_model_states.pt (or .safetensors)"}
    modes: tuple[str, ...] = ()
    flags: dict[str, str] = {}

    def locate(self, root: Path, variant: str = "auto") -> Hallo3Files:
        from .checkpoint import find_weights

        return Hallo3Files(root=Path(root), weights=find_weights(root))

    def required_parts(self, separate_vocals: bool = False) -> list[str]:
        return ["vae", "t5", "face_models", "wav2vec", *(["vocal_separator"] if separate_vocals else [])]

    def check_inputs(self, files: Hallo3Files | None, image, audio, output, **options: Any) -> NoReturn:
        self._not_wired(files)

    def settings(self, files: Hallo3Files, mode: str = "auto", **settings: Any) -> NoReturn:
        self._not_wired(files)

    def load(self, files: Hallo3Files, **options: Any) -> NoReturn:
        self._not_wired(files)

    @staticmethod
    def _not_wired(files: Hallo3Files | None) -> NoReturn:
        found = f" ({files.describe()})" if files is not None else ""
        raise InputError(
            f"variant 'hallo3'{found}: generating with Hallo3 is not wired into the pipeline yet (issue #13); "
            "for now, pick a model folder with Hallo or Hallo2 weights", "variant",
        )


FAMILY = Hallo3Family()
