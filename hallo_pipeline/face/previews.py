"""What a family's face analysis shows the user (Hallo Face Mask's image and mask outputs), family-neutral."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FacePreviews:
    reference: torch.Tensor  # (3, H, W) in [0, 1]: the portrait as the model sees it
    # (h, w) maps in [0, 1] (uint8 0..255 also accepted), any size: shown resized over `reference`. A family
    # without per-region audio strengths gives empty (zero) region maps.
    pose: torch.Tensor
    face: torch.Tensor
    lip: torch.Tensor
    face_region: torch.Tensor  # the face box the model is told about
