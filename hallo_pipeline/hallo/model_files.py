"""Where each file lives in a model folder laid out like the official Hugging Face repos (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..model_folder import ModelFolder
from .checkpoint import find_net_file

DOWNLOAD_HINT = "python -m hallo_pipeline download {root}"
VARIANT_NAMES = {"hallo": "Hallo", "hallo2": "Hallo2"}


@dataclass(frozen=True)
class ModelFiles(ModelFolder):
    root: Path
    net: Path
    variant: str  # a key of VARIANT_NAMES
    # Why this variant was chosen when the caller asked for "auto" and it is not the first choice.
    note: str = ""

    def describe(self) -> str:
        """Which weights a run uses, for the user to see (never switch families silently)."""
        name = VARIANT_NAMES.get(self.variant, self.variant)
        return f"{name} weights {self.net}" + (f" ({self.note})" if self.note else "")

    def fetch_hint(self) -> str:
        return f"Fetch the official files with: {DOWNLOAD_HINT.format(root=self.root)}"

    @property
    def vae(self) -> Path:
        return self.root / "sd-vae-ft-mse"

    def parts(self) -> dict[str, Path]:
        """The parts `require` knows: "vae", "wav2vec", "face_models", "vocal_separator"."""
        return {"vae": self.vae / "config.json", **super().parts()}


def locate(model_dir: str | Path, variant: str = "auto") -> ModelFiles:
    """Find the net file (Hallo or Hallo2) and the support files of a model folder."""
    root = Path(model_dir).expanduser()
    try:
        net, found = find_net_file(root, variant)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. Or fetch them with: {DOWNLOAD_HINT.format(root=root)}") from None
    note = ""
    if variant == "auto" and found == "hallo2":
        note = "no hallo/net.pth in the folder, so the Hallo2 weights and Hallo2's long-video mode are used"
    return ModelFiles(root=root, net=net, variant=found, note=note)
