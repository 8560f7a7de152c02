"""Settings every model family shares: the options a user picks and the ranges a run accepts.

Each `Limit` is one user setting (default and range), read by the library's checks, the command line
and the node schemas alike. The sizes of a family's networks live in that family's package
(`hallo/config.py`, `hallo3/config.py`). Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# The attention kernels a user can choose (`attention_backends.select_kernel` says what each needs);
# here rather than there so the command line and the nodes list them without importing torch.
ATTENTION_OPTIONS = ("auto", "sdpa", "flash", "sage")
# How a photo becomes the picture the model sees (`framing.py`): a crop around the face of the working
# size's shape (Hallo's square, Hallo3's 3:2), pasted back into the photo afterwards (the default), or the
# release's geometry for the whole photo (Hallo: resized to a square; Hallo3: scaled and centre-cropped).
FRAMING_OPTIONS = ("crop", "stretch")


@dataclass(frozen=True)
class Limit:
    """One user setting: its default and the range a run accepts, owned here and read by the
    library's checks, the command line and the node schemas alike (so they cannot drift)."""

    name: str
    default: float
    low: float
    high: float
    whole: bool  # a whole number (int), or any finite float in the range
    hint: str  # what the released model uses / why the range, for the message

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, worded to follow the setting's name; None if it is fine."""
        kind = "a whole number" if self.whole else "a finite number"
        ok_type = isinstance(value, int) if self.whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or (not self.whole and not math.isfinite(value)):
            return f"must be {kind} from {self._bounds()}, got {value!r}; {self.hint}"
        if not self.low <= value <= self.high:
            return f"{value!r} is out of range: use {self._bounds()}; {self.hint}"
        return None

    def check(self, value: Any, input: str | None = None) -> Any:
        """`value` if it is in range, else an `InputError` naming `input` (default: the setting's name)."""
        from .errors import InputError

        problem = self.problem(value)
        if problem is not None:
            raise InputError(f"{input or self.name} {problem}", input or self.name)
        return value

    def _bounds(self) -> str:
        fmt = "d" if self.whole else "g"  # whole numbers exactly (a seed's 2^64-1 is not 1.8e+19)
        return f"{self.low:{fmt}} to {self.high:{fmt}}"


# Video frames per second: the audio features are framed at this rate and the weights were trained
# at it, so it is not a setting (another rate would drift the lips away from the sound).
FPS = 25

# The defaults are the released model's (SPEC §7-§9); the ranges are what a run can honour.
STEPS = Limit("steps", 40, 1, 1000, True, "Hallo uses 40 DDIM steps (the schedule has 1000 timesteps)")
GUIDANCE = Limit("cfg", 3.5, 0.0, 20.0, False, "Hallo uses 3.5; 1 or less means no guidance (one network pass)")
REGION_WEIGHT = Limit("weight", 1.0, 0.0, 5.0, False, "1.0 is as trained, 0 switches the region's audio off")
SEED = Limit("seed", 42, 0, 2**64 - 1, True, "any whole number from 0 to 2^64-1 (the range of a torch seed)")
IMAGE_SIZE = Limit("image_size", 512, 64, 1024, True, "a multiple of 64; Hallo was trained at 512")
FACE_EXPAND_RATIO = Limit("face_expand_ratio", 1.2, 0.5, 3.0, False, "Hallo uses 1.2")
# The lower end: each clip hands its last two frames on as the next clip's motion frames. The upper
# end depends on the weights (their motion modules' position table): `HalloPipeline.settings` checks it.
CLIP_LENGTH = Limit("clip_length", 16, 2, 1000, True, "Hallo was trained with 16 frames per clip")
# Framing a photo (`framing.py`). 2.3 x the face-oval box is measured on real portraits (the committed
# test portrait and scikit-image's astronaut): the hair top lies 0.99-1.02 oval sides above the oval's
# centre, so 2 x 1.02 = 2.04 just reaches it, and 2.04 / (1 - 2 x 0.05) = 2.27 also keeps the default
# feather band (5% of the crop side) on the background above the hair; the neck to the collar fits below.
# A rectangular crop (Hallo3) applies it to its shorter side, the height of a 3:2 one: the same fit from top
# to bottom, more shoulders and background to the sides.
CROP_SCALE = Limit("crop_scale", 2.3, 1.0, 6.0, False, "2.3 fits head, hair and neck; 1 is the face box alone")
FEATHER = Limit("feather", 0.05, 0.0, 0.5, False, "a fraction of the crop side; 0 is a hard edge")
MAX_SIDE = Limit("max_side", 0, 0, 65536, True, "0 keeps the photo's size, else the output's long side in pixels")


@dataclass(frozen=True)
class RegionWeights:
    """The user's per-region strengths of the audio attention (SPEC §4); 1.0 = as trained."""

    pose: float = 1.0
    face: float = 1.0
    lip: float = 1.0

    def __post_init__(self) -> None:
        for region in ("pose", "face", "lip"):
            REGION_WEIGHT.check(getattr(self, region), f"{region}_weight")
