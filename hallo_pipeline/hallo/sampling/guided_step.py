"""One classifier-free-guided denoising step of one clip: the unit the sampler loops over.

Split in the three parts whose results live for different times:
identity conditioning (per portrait), reference layers (per clip: they depend on the motion
frames), and the step itself (per timestep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ...config import RegionWeights
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
    uncond: torch.Tensor | None  # None when guidance <= 1 ran the conditional half alone


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


def _run_reference(net: HalloNet, latents: torch.Tensor, contexts: torch.Tensor) -> list[torch.Tensor]:
    banks = net.reference_unet(latents.to(contexts.dtype), contexts)
    return [bank.to(REFERENCE_FEATURE_DTYPE) for bank in banks]


def assemble_reference_layers(
    image_rows: Sequence[torch.Tensor], motion_rows: Sequence[torch.Tensor], frames: int
) -> list[ReferenceLayer]:
    """Pair each layer's reference-image rows (2, HW, C) and motion rows (2, 2, HW, C).

    The cond frame at CFG batch row k (rows F..2F-1) attends to image row 0 (the copy run with
    the uncond context) when k is even and to row 1 (cond context) when k is odd.
    """
    index = torch.arange(frames, 2 * frames, device=image_rows[0].device) % 2
    return [
        ReferenceLayer(tokens=ReferenceTokens(tokens=image, index=index), motion=motion)
        for image, motion in zip(image_rows, motion_rows)
    ]


@torch.no_grad()
def reference_image_features(net: HalloNet, ref_latent: torch.Tensor, face_tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (2, HW, C): the reference image seen with the [uncond, cond] context.

    Depends only on the portrait, so it is computed once per identity.
    """
    return _run_reference(net, ref_latent.reshape(1, *ref_latent.shape[-3:]).expand(2, -1, -1, -1), face_tokens)


@torch.no_grad()
def motion_frame_features(net: HalloNet, motion_latents: torch.Tensor, face_tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (2, 2, HW, C): motion frames [m1, m2] for the uncond half, then for the cond half.

    Context-tiling quirk: the release pairs [m1, m2, m1, m2] with contexts [c, u, u, c].
    """
    u, c = face_tokens[:1], face_tokens[1:]
    rows = motion_latents.repeat(2, 1, 1, 1)
    banks = _run_reference(net, rows, torch.cat([c, u, u, c]))
    return [bank.reshape(2, 2, *bank.shape[1:]) for bank in banks]


@torch.no_grad()
def reference_layers(
    net: HalloNet, ref_latents: torch.Tensor, face_tokens: torch.Tensor, frames: int
) -> list[ReferenceLayer]:
    """The release's order: one ReferenceNet pass per clip over all six rows.

    ref_latents: (3, 4, h, w) = [reference image, motion frame 1, motion frame 2] (scaled VAE means).
    Rows [r, m1, m2, r, m1, m2] run against contexts tiled [u, c, u, c, u, c]; the cond half's
    spatial attention reads rows 0/3, the motion modules read rows 1-2 (uncond) and 4-5 (cond).
    Equal to `reference_image_features` + `motion_frame_features`, which split the same rows so
    the image rows can be cached.
    """
    rows = ref_latents.repeat(2, 1, 1, 1)
    banks = _run_reference(net, rows, face_tokens.repeat(3, 1, 1))  # context-tiling quirk
    image = [bank[[0, 3]] for bank in banks]
    motion = [torch.stack([bank[[1, 2]], bank[[4, 5]]]) for bank in banks]
    return assemble_reference_layers(image, motion, frames)


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
    between_blocks: Callable[[], None] | None = None,
) -> StepOutput:
    """latents: (1, 4, F, h, w); audio_tokens: (1, F, tokens, D) = audioproj of the clip's features.

    Both CFG halves go through one batched forward. The uncond half gets zero face features,
    zero audio tokens (zeros *after* audioproj) and no reference tokens; motion-frame features
    are given to both. With `guidance_scale` <= 1 there is no guidance (as in diffusers
    pipelines): the conditional half runs alone, half the work, and is the prediction.
    `between_blocks` is handed to the UNet (Cancel checks inside the step).
    """
    unet = net.denoising_unet
    dtype = unet.conv_in.weight.dtype
    audio = audio_tokens.to(dtype)
    if guidance_scale <= 1.0:
        cond = unet(
            latents.to(dtype),
            timestep,
            context=identity.face_tokens[1:],
            audio_tokens=audio,
            masks=identity.masks,
            weights=weights,
            # The cond half's reference rows and motion rows; the batch is all "cond" rows.
            reference=[ReferenceLayer(tokens=layer.tokens, motion=layer.motion[1:]) for layer in reference],
            face_features=identity.face_features,
            between_blocks=between_blocks,
        )
        return StepOutput(guided=cond, cond=cond, uncond=None)
    out = unet(
        latents.to(dtype).repeat(2, 1, 1, 1, 1),
        timestep,
        context=identity.face_tokens,
        audio_tokens=torch.cat([torch.zeros_like(audio), audio]),
        masks=identity.masks,
        weights=weights,
        reference=reference,
        face_features=torch.cat([torch.zeros_like(identity.face_features), identity.face_features]),
        between_blocks=between_blocks,
    )
    uncond, cond = out[:1], out[1:]
    return StepOutput(guided=uncond + guidance_scale * (cond - uncond), cond=cond, uncond=uncond)
