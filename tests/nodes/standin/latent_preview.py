"""Stand-in of ComfyUI's latent_preview: previewers that map latents linearly to RGB and hand back a PIL image,
and a record of which previewers were asked for."""

import torch
from comfy.cli_args import args
from PIL import Image

MAX_PREVIEW_RESOLUTION = 512
asked: list[tuple] = []  # (previewer kind, the latent format or factors) per previewer made


class Latent2RGBPreviewer:
    def __init__(self, latent_rgb_factors, latent_rgb_factors_bias=None):
        self.factors = torch.tensor(latent_rgb_factors)
        self.bias = torch.zeros(3) if latent_rgb_factors_bias is None else torch.tensor(latent_rgb_factors_bias)
        self.decoded: list[torch.Tensor] = []

    def decode_latent_to_preview_image(self, preview_format, x0):
        self.decoded.append(x0)
        rgb = x0[0].movedim(0, -1) @ self.factors.to(x0) + self.bias.to(x0)
        pixels = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)
        return preview_format, Image.fromarray(pixels.cpu().numpy()), MAX_PREVIEW_RESOLUTION


def get_previewer(device, latent_format):
    method = args.preview_method.value
    asked.append((method, latent_format))
    if method == "none":
        return None
    # No TAESD file in the stand-in's model folders: every method falls back to latent2rgb, as ComfyUI does.
    return Latent2RGBPreviewer(latent_format.latent_rgb_factors, latent_format.latent_rgb_factors_bias)
