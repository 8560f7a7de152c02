"""Where each file lives in a model folder laid out like the official Hugging Face repos (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import find_net_file

DOWNLOAD_HINT = "python -m hallo_pipeline download {root}"


@dataclass(frozen=True)
class ModelFiles:
    root: Path
    net: Path
    variant: str  # "hallo" or "hallo2"
    # Why this variant was chosen when the caller asked for "auto" and it is not the first choice.
    note: str = ""

    def describe(self) -> str:
        """Which weights a run uses, for the user to see (never switch families silently)."""
        name = {"hallo": "Hallo", "hallo2": "Hallo2"}.get(self.variant, self.variant)
        return f"{name} weights {self.net}" + (f" ({self.note})" if self.note else "")

    @property
    def vae(self) -> Path:
        return self.root / "sd-vae-ft-mse"

    @property
    def wav2vec(self) -> Path:
        return self.root / "wav2vec" / "wav2vec2-base-960h"

    @property
    def face_models(self) -> Path:
        return self.root / "face_analysis" / "models"

    @property
    def landmarker_task(self) -> Path | None:
        """The mediapipe Face Landmarker the release uses; None falls back to the legacy face mesh."""
        path = self.face_models / "face_landmarker_v2_with_blendshapes.task"
        return path if path.is_file() else None

    @property
    def vocal_separator(self) -> Path:
        return self.root / "audio_separator" / "Kim_Vocal_2.onnx"

    def require(self, *parts: str) -> None:
        """Raise one error listing every missing part among "vae", "wav2vec", "face_models", "vocal_separator"."""
        checks = {
            "vae": (self.vae / "config.json"),
            "wav2vec": (self.wav2vec / "config.json"),
            "face_models": self.face_models,
            "vocal_separator": self.vocal_separator,
        }
        missing = [str(checks[p]) for p in parts if not checks[p].exists()]
        if missing:
            raise CheckpointError(
                f"model folder {str(self.root)!r} is incomplete; missing: {', '.join(missing)}. "
                f"Fetch the official files with: {DOWNLOAD_HINT.format(root=self.root)}"
            )


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
