"""Image <-> latent conversion with the SD VAE (`sd-vae-ft-mse`), as the release uses it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError

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


# Peak of the SD VAE decoder per output pixel and frame: six live 128-channel maps at full
# resolution (counted by benchmarks/memory_estimate.py: 384 MiB per 512x512 frame in fp16).
_DECODE_VALUES_PER_PIXEL = 768
# Four 512x512 frames already fill a GPU; more would only raise the peak above the denoiser's.
MAX_DECODE_BATCH = 4


class LatentCodec:
    """Encodes reference/motion images to scaled latent means and decodes latents to [0, 1] frames.

    decode_batch: frames per VAE decode call; None sizes it from the free GPU memory, up to
    MAX_DECODE_BATCH (always that on the CPU). The release decodes one frame at a time
    (decode_batch=1); batching gives the same frames.
    """

    def __init__(self, vae, scaling_factor: float = VAE_SCALING_FACTOR, decode_batch: int | None = None):
        self.vae = vae
        self.scaling_factor = scaling_factor
        self.decode_batch = decode_batch

    def _batch_size(self, latents: torch.Tensor) -> int:
        if self.decode_batch is not None:
            return max(1, self.decode_batch)
        if self.device.type != "cuda":
            return MAX_DECODE_BATCH
        free, _ = torch.cuda.mem_get_info(self.device)
        h, w = latents.shape[-2:]
        per_frame = (8 * h) * (8 * w) * self.dtype.itemsize * _DECODE_VALUES_PER_PIXEL
        return int(max(1, min(MAX_DECODE_BATCH, free // 2 // per_frame)))

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
        """(N, 4, h, w) -> (N, 3, H, W) float32 in [0, 1] on the CPU, a batch of frames at a time.

        Frames leave the device as soon as they are decoded.
        """
        out = []
        for chunk in latents.split(self._batch_size(latents)):
            image = self.vae.decode(chunk.to(self.device, self.dtype) / self.scaling_factor).sample
            out.append((image / 2 + 0.5).clamp(0, 1).float().cpu())
        return torch.cat(out)
