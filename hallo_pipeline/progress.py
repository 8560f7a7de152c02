"""What a generation reports after each sampler step, whatever the family: the command line's progress bar
and the nodes' progress reporter read it. Cheap to import (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .latent_preview import LatentPreview


@dataclass(frozen=True)
class Progress:
    clip: int  # index of the clip (Hallo) or segment (Hallo3) being sampled (absolute)
    clips: int  # clips in this run
    step: int  # steps done in this clip (1..steps)
    steps: int
    done: int  # steps done in this run
    total: int  # steps in this run
    unit: str = "clip"  # what `clip` counts, for messages: "clip" (Hallo) or "segment" (Hallo3)
    # The clip's predicted clean latents after this step, built only if called (and only valid during the
    # callback): a reporter that shows no previews costs the sampler nothing.
    preview: Callable[[], LatentPreview] | None = None
