"""Image <-> latent conversion with the SD VAE (`sd-vae-ft-mse`), as the release uses it."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError

VAE_SCALING_FACTOR = 0.18215  # hard-coded in the release pipeline


def load_vae(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """diffusers `AutoencoderKL` from a diffusers folder (config.json + weights)."""
    from diffusers import AutoencoderKL

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"VAE folder {str(folder)!r} is missing or has no config.json; download "
            "stabilityai/sd-vae-ft-mse (it is in the Hallo repo as sd-vae-ft-mse/) into that folder"
        )
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), torch_dtype=dtype, low_cpu_mem_usage=False)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise CheckpointError(f"VAE folder {str(folder)!r} could not be loaded ({exc}); download it again") from exc
    return vae.to(device).eval().requires_grad_(False)


class LatentCodec:
    """Encodes reference/motion images to scaled latent means and decodes latents to [0, 1] frames."""

    def __init__(self, vae, scaling_factor: float = VAE_SCALING_FACTOR, decode_batch: int = 1):
        self.vae = vae
        self.scaling_factor = scaling_factor
        self.decode_batch = max(1, decode_batch)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 4, H/8, W/8) posterior mean x scaling (no sampling)."""
        dist = self.vae.encode(images.to(self.device, self.dtype)).latent_dist
        return dist.mean * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 4, h, w) -> (N, 3, H, W) float32 in [0, 1] on the CPU, `decode_batch` frames at a time.

        Frames leave the device as soon as they are decoded.
        """
        out = []
        for chunk in latents.split(self.decode_batch):
            image = self.vae.decode(chunk.to(self.device, self.dtype) / self.scaling_factor).sample
            out.append((image / 2 + 0.5).clamp(0, 1).float().cpu())
        return torch.cat(out)
