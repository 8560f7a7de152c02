"""One classifier-free-guided denoising step of one clip: the unit the sampler loops over.

Split in the three parts whose results live for different times:
identity conditioning (per portrait), reference layers (per clip: they depend on the motion
frames), and the step itself (per timestep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..config import RegionWeights
from ..models import HalloNet, ReferenceLayer, ReferenceTokens, RegionMasks

# Release quirk: the ReferenceNet's features are rounded to float16 before the denoiser reads them,
# in every precision (the weights were trained that way).
REFERENCE_FEATURE_DTYPE = torch.float16


@dataclass
class IdentityConditioning:
    """Everything derived from the portrait alone, reused for every clip and step."""

    face_tokens: torch.Tensor  # (2, tokens, D): [uncond = imageproj(0), cond = imageproj(embedding)]
    face_features: torch.Tensor  # (1, C0, h, w): FaceLocator(face region) for the cond half
    masks: list[RegionMasks]  # one per resolution level, level 0 = latent size


@dataclass
class StepOutput:
    guided: torch.Tensor  # (1, C, F, h, w): uncond + g * (cond - uncond), the v-prediction DDIM gets
    cond: torch.Tensor
    uncond: torch.Tensor


@torch.no_grad()
def encode_identity(
    net: HalloNet, face_embedding: torch.Tensor, face_region: torch.Tensor, masks: Sequence[RegionMasks]
) -> IdentityConditioning:
    """face_embedding: (1, 512) raw ArcFace vector; face_region: (1, 3, H, W) in [0, 1]."""
    dtype = next(net.imageproj.parameters()).dtype
    device = next(net.imageproj.parameters()).device
    emb = face_embedding.to(device, dtype).reshape(1, -1)
    face_tokens = net.imageproj(torch.cat([torch.zeros_like(emb), emb]))
    face_features = net.face_locator(face_region.to(device, dtype).reshape(1, *face_region.shape[-3:]))
    masks = [RegionMasks(*(m.to(device, dtype).reshape(-1) for m in (lvl.full, lvl.face, lvl.lip))) for lvl in masks]
    return IdentityConditioning(face_tokens, face_features, list(masks))


@torch.no_grad()
def reference_layers(
    net: HalloNet, ref_latents: torch.Tensor, face_tokens: torch.Tensor, frames: int
) -> list[ReferenceLayer]:
    """Run the ReferenceNet once for a clip and hand each denoiser layer its tokens.

    ref_latents: (3, 4, h, w) = [reference image, motion frame 1, motion frame 2] (scaled VAE means).
    The release runs six rows [r, m1, m2, r, m1, m2] against contexts tiled [u, c, u, c, u, c]
    (so the reference image is seen once with each context, the motion frames crosswise); the
    cond frame at CFG batch row k attends to row 0 (k even) or row 3 (k odd); the motion
    modules get rows 1-2 (uncond half) and 4-5 (cond half).
    """
    rows = ref_latents.repeat(2, 1, 1, 1)
    contexts = face_tokens.repeat(3, 1, 1)  # context-tiling quirk: [u, c, u, c, u, c]
    banks = net.reference_unet(rows.to(face_tokens.dtype), contexts)
    index = torch.arange(frames, 2 * frames, device=rows.device) % 2
    layers = []
    for bank in banks:
        bank = bank.to(REFERENCE_FEATURE_DTYPE)
        layers.append(
            ReferenceLayer(
                tokens=ReferenceTokens(tokens=bank[[0, 3]], index=index),
                motion=torch.stack([bank[[1, 2]], bank[[4, 5]]]),
            )
        )
    return layers


@torch.no_grad()
def guided_denoise_step(
    net: HalloNet,
    latents: torch.Tensor,
    timestep: torch.Tensor | int,
    identity: IdentityConditioning,
    audio_tokens: torch.Tensor,
    reference: Sequence[ReferenceLayer],
    guidance_scale: float,
    weights: RegionWeights,
) -> StepOutput:
    """latents: (1, 4, F, h, w); audio_tokens: (1, F, tokens, D) = audioproj of the clip's features.

    Both CFG halves go through one batched forward. The uncond half gets zero face features,
    zero audio tokens (zeros *after* audioproj) and no reference tokens; motion-frame features
    are given to both.
    """
    unet = net.denoising_unet
    dtype = unet.conv_in.weight.dtype
    audio = audio_tokens.to(dtype)
    out = unet(
        latents.to(dtype).repeat(2, 1, 1, 1, 1),
        timestep,
        context=identity.face_tokens,
        audio_tokens=torch.cat([torch.zeros_like(audio), audio]),
        masks=identity.masks,
        weights=weights,
        reference=reference,
        face_features=torch.cat([torch.zeros_like(identity.face_features), identity.face_features]),
    )
    uncond, cond = out[:1], out[1:]
    return StepOutput(guided=uncond + guidance_scale * (cond - uncond), cond=cond, uncond=uncond)
