"""What a live preview needs from a sampler step, whatever the family: the clip's predicted clean latents and
the latent space they live in. Built only when a progress callback asks (`Progress.preview`), so a run without
previews does no work for them.

Hallo samples in the Stable Diffusion 1.5 VAE's space, for which previewers have published latent -> RGB factors
and small decoders. Hallo3 samples in the CogVideoX VAE's space, for which none are published: its map is fitted
by least squares on the video's own reference portrait and that portrait's latent (`fit_latent_rgb`), so it
describes whichever VAE is loaded, real or tiny, with no extra network call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

SD15 = "sd15"  # scaled Stable Diffusion 1.5 VAE latents (x 0.18215), 4 channels
COGVIDEOX = "cogvideox"  # scaled CogVideoX VAE latents (x 0.7), 16 channels, 4 frames per latent frame


@dataclass(frozen=True)
class LatentRGB:
    """An affine map from latent channels to RGB in [-1, 1]: rgb = latent @ factors + bias."""

    factors: torch.Tensor  # (channels, 3)
    bias: torch.Tensor  # (3,)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., channels, h, w) -> (..., 3, h, w)."""
        rgb = latents.movedim(-3, -1).float() @ self.factors.to(latents.device) + self.bias.to(latents.device)
        return rgb.movedim(-1, -3)


@dataclass(frozen=True)
class LatentPreview:
    """The clip's predicted clean latents (x0) at one sampler step. `latents` is a view of the sampler's tensor:
    use it inside the progress callback, or copy it."""

    latents: torch.Tensor  # (frames, channels, h, w), frames in time order (latent frames for Hallo3)
    space: str  # SD15 or COGVIDEOX
    rgb: LatentRGB | None = None  # fitted for this run where the space has no published map

    @property
    def middle(self) -> torch.Tensor:
        """The middle frame, (1, channels, h, w): what a preview shows of the clip."""
        return self.latents[self.latents.shape[0] // 2][None]


def fit_latent_rgb(latent: torch.Tensor, image: torch.Tensor) -> LatentRGB:
    """Least-squares affine map from `latent` (channels, h, w) to `image` (3, H, W) in [-1, 1], the image
    averaged over each latent pixel's footprint. One portrait gives h x w samples for channels + 1 unknowns per
    colour (5400 for 17 at Hallo3's 480 x 720), so the fit is well determined."""
    channels, h, w = latent.shape
    target = F.adaptive_avg_pool2d(image[None].float(), (h, w))[0]
    x = torch.cat([latent.float().reshape(channels, -1), torch.ones(1, h * w, device=latent.device)]).T
    y = target.reshape(3, -1).T.to(x.device)
    solution = torch.linalg.lstsq(x.cpu().double(), y.cpu().double()).solution.float()
    return LatentRGB(solution[:channels], solution[channels])


class RGBFit:
    """A latent -> RGB map fitted once, on first use, from a (latent, image) pair the sampler already has."""

    def __init__(self, latent: torch.Tensor, image: torch.Tensor):
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = (latent, image)
        self._map: LatentRGB | None = None

    def __call__(self) -> LatentRGB:
        if self._map is None:
            self._map = fit_latent_rgb(*self._pair)
            self._pair = None  # the pair is not needed again: let it go
        return self._map


def previewer(latents: torch.Tensor, space: str, rgb: Callable[[], LatentRGB] | None = None
              ) -> Callable[[], LatentPreview]:
    """`Progress.preview` for a step: builds the preview only when called."""
    return lambda: LatentPreview(latents, space, rgb() if rgb is not None else None)
