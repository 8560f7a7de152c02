"""A model folder as every family lays it out: its own weights, and the support models all of them share.

The Hugging Face repos of Hallo, Hallo2 and Hallo3 keep wav2vec2, the face models and the vocal separator
under the same paths, so `ModelFolder` knows those; each family's subclass (a frozen dataclass: `root`,
`variant`, `note` and its weights) adds its own parts and says how to fetch what is missing.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError


class ModelFolder:
    """The files of one model folder that a family found (`families.locate`); subclasses are frozen dataclasses."""

    root: Path
    variant: str  # one of the family's variants (`ModelFamily.variants`)
    # Why this variant was chosen when the caller asked for "auto" and it is not the first choice.
    note: str

    def describe(self) -> str:
        """Which weights a run uses, for the user to see (never switch families silently)."""
        raise NotImplementedError

    def fetch_hint(self) -> str:
        """The sentence that tells how to get a missing file."""
        raise NotImplementedError

    @property
    def wav2vec(self) -> Path:
        return self.root / "wav2vec" / "wav2vec2-base-960h"

    @property
    def face_models(self) -> Path:
        return self.root / "face_analysis" / "models"

    @property
    def landmarker_task(self) -> Path | None:
        """The mediapipe Face Landmarker the releases use; None falls back to the legacy face mesh."""
        path = self.face_models / "face_landmarker_v2_with_blendshapes.task"
        return path if path.is_file() else None

    @property
    def vocal_separator(self) -> Path:
        return self.root / "audio_separator" / "Kim_Vocal_2.onnx"

    def parts(self) -> dict[str, Path]:
        """Part name -> the path whose presence shows the part is there; families add their own."""
        return {
            "wav2vec": self.wav2vec / "config.json",
            "face_models": self.face_models,
            "vocal_separator": self.vocal_separator,
        }

    def require(self, *parts: str) -> None:
        """Raise one error listing every missing part among `parts` (names of `parts()`)."""
        checks = self.parts()
        missing = [str(checks[p]) for p in parts if not checks[p].exists()]
        if missing:
            raise CheckpointError(
                f"model folder {str(self.root)!r} is incomplete; missing: {', '.join(missing)}. {self.fetch_hint()}"
            )
