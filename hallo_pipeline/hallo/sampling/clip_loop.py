"""The clip loop: F new frames at a time, each clip conditioned on the previous clip's last frames.

Hallo (v1, SPEC §9): clip 0's motion frames are the reference image twice; clip c > 0 uses the
last two *decoded* frames of clip c-1 (floats in [0, 1] -> [-1, 1], not quantised), re-encoded
by the VAE. Hallo2 (SPEC §10) additionally drops motion-frame pixels at random outside the face
box. Noise comes from one seeded CPU generator in clip order, so the same seed gives the same
video on any device, and a run can start at any clip (`MotionContext`) and still match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from ...config import CLIP_LENGTH, GUIDANCE, SEED, STEPS, RegionWeights
from ...devices import Placement
from ...errors import Cancelled, InputError
from ...latent_preview import SD15, previewer
from ...progress import Progress  # shared by the families (hallo_pipeline.progress)
from ..config import MotionModuleConfig
from ..models import HalloNet
from ..vae import LatentCodec
from .guided_step import (
    IdentityConditioning,
    assemble_reference_layers,
    guided_denoise_step,
    motion_frame_features,
    reference_image_features,
    reference_layers,
)
from .scheduler import make_scheduler

MOTION_FRAMES = 2  # the released weights were trained with two motion frames


def check_clip_length(clip_length: int, motion: MotionModuleConfig) -> int:
    """The motion modules see [motion frames ; clip frames] and add a stored position table of
    `max_frames` rows, so a clip can be at most `max_frames - MOTION_FRAMES` frames long."""
    CLIP_LENGTH.check(clip_length)
    longest = motion.max_frames - MOTION_FRAMES
    if clip_length > longest:
        raise InputError(
            f"clip_length {clip_length} is too long for these weights: their motion modules hold positions for "
            f"{motion.max_frames} frames, {MOTION_FRAMES} of which are the motion frames; use at most {longest} "
            f"(Hallo was trained with {CLIP_LENGTH.default})", "clip_length",
        )
    return clip_length


@dataclass(frozen=True)
class SamplerSettings:
    """The one owner of a sampling run's settings; every value is checked when it is made."""

    steps: int = STEPS.default
    guidance_scale: float = GUIDANCE.default
    weights: RegionWeights = field(default_factory=RegionWeights)
    seed: int = SEED.default
    clip_length: int = CLIP_LENGTH.default
    # Hallo2: probability that a motion-frame pixel outside the face region is dropped (0.25); 0 = Hallo.
    motion_drop_rate: float = 0.0
    # Compute the reference image's ReferenceNet rows once per portrait instead of every clip
    # (False reproduces the release's order of work, for benchmarks).
    cache_reference: bool = True

    def __post_init__(self) -> None:
        STEPS.check(self.steps)
        GUIDANCE.check(self.guidance_scale, "guidance_scale")
        SEED.check(self.seed)
        CLIP_LENGTH.check(self.clip_length)
        if not isinstance(self.weights, RegionWeights):
            raise InputError(f"weights must be a RegionWeights, got {type(self.weights).__name__}", "weights")
        if not (isinstance(self.motion_drop_rate, (int, float)) and 0.0 <= self.motion_drop_rate < 1.0):
            raise InputError(f"motion_drop_rate must be in [0, 1) (got {self.motion_drop_rate!r})", "motion_drop_rate")


@dataclass
class MotionContext:
    """Where generation stopped: enough to continue with the next clip exactly."""

    next_clip: int = 0
    frames: torch.Tensor | None = None  # (2, 3, H, W) last two decoded frames in [0, 1], on the CPU
    # The clip whose noise the seeded generator draws first: 0 for the exact video (a later start replays the
    # draws before it); an independent segment (`hallo_pipeline.independent`) starts its own seed's stream at
    # its first clip, so its noise needs no replay of clips it does not render.
    noise_start: int = 0


@dataclass
class ClipInputs:
    """What stays the same for every clip of one video."""

    identity: IdentityConditioning
    reference_image: torch.Tensor  # (3, H, W) in [-1, 1]
    face_region: torch.Tensor  # (3, H, W) in [0, 1]: FaceLocator input, also the Hallo2 keep-region
    audio_features: torch.Tensor  # (padded_frames, window, layers, channels), padded to whole clips
    # ReferenceNet rows of the portrait (`reference_image_features`); filled on first use when None.
    image_rows: list[torch.Tensor] | None = None


def _draw_clip_randomness(
    generator: torch.Generator, settings: SamplerSettings, image_hw: tuple[int, int], latent_shape: tuple[int, ...]
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The release's draw order per clip: Hallo2's drop map (H, W) first, then the initial noise."""
    drop = torch.rand(image_hw, generator=generator) if settings.motion_drop_rate > 0 else None
    noise = torch.randn(latent_shape, generator=generator)
    return drop, noise


def portrait_rows(
    net: HalloNet, codec: LatentCodec, reference_image: torch.Tensor, face_tokens: torch.Tensor,
    placement: Placement | None = None,
) -> list:
    """The reference image's ReferenceNet rows (`reference_image_features`); the same for every clip."""
    placement = placement or Placement(codec.device)
    with placement.use(codec.vae):
        latent = codec.encode(reference_image[None])
    with placement.use(net.reference_unet):
        return reference_image_features(net, latent, face_tokens)


def motion_keep_mask(drop_rand: torch.Tensor, face_region: torch.Tensor, rate: float) -> torch.Tensor:
    """Hallo2: keep a pixel where the random draw exceeds `rate` or the face region is non-zero."""
    return (drop_rand > rate) | (face_region[0] > 0)


class ClipSampler:
    """Samples clips one after another and yields each clip's decoded frames (on the CPU)."""

    def __init__(
        self,
        net: HalloNet,
        codec: LatentCodec,
        settings: SamplerSettings,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        trace: Callable[[str, torch.Tensor], None] | None = None,
        placement: Placement | None = None,
    ):
        """`trace(name, tensor)`, when given, sees the intermediate tensors under the names the
        parity fixtures use (`clip{c}.initial_noise`, `clip{c}.step{j}.model_output`, ...).
        `placement` brings the VAE and the ReferenceNet to the GPU only while they work."""
        self.net, self.codec, self.settings = net, codec, settings
        self.placement = placement or Placement(self.device)
        self.progress, self.should_cancel = progress, should_cancel
        self.trace = trace or (lambda name, tensor: None)
        self.scheduler = make_scheduler(settings.steps)

    @property
    def device(self) -> torch.device:
        return self.net.denoising_unet.conv_in.weight.device

    def num_clips(self, inputs: ClipInputs) -> int:
        return inputs.audio_features.shape[0] // self.settings.clip_length

    def _check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("generation was cancelled")

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        with self.placement.use(self.codec.vae):
            return self.codec.encode(images)

    def _reference(self, inputs: ClipInputs, motion: torch.Tensor) -> list:
        """This clip's ReferenceNet layers. The VAE and the ReferenceNet come to the GPU one after
        the other, so in low-VRAM mode the VAE encoder's activations never meet the ReferenceNet's
        weights (benchmarks/memory_estimate.py)."""
        frames = self.settings.clip_length
        face_tokens = inputs.identity.face_tokens
        if not self.settings.cache_reference:
            latents = self._encode(torch.cat([inputs.reference_image[None], motion]))
            with self.placement.use(self.net.reference_unet):
                return reference_layers(self.net, latents, face_tokens, frames)
        if inputs.image_rows is None:
            inputs.image_rows = portrait_rows(self.net, self.codec, inputs.reference_image, face_tokens, self.placement)
        motion_latents = self._encode(motion)
        with self.placement.use(self.net.reference_unet):
            motion_rows = motion_frame_features(self.net, motion_latents, face_tokens)
        return assemble_reference_layers(inputs.image_rows, motion_rows, frames)

    def run(
        self, inputs: ClipInputs, clips: range | None = None, context: MotionContext | None = None
    ) -> Iterator[tuple[torch.Tensor, MotionContext]]:
        """Yield (frames (F, 3, H, W) in [0, 1], context after this clip) for each clip in `clips`.

        `context` must be the one returned after clip `clips.start - 1` (None when starting at 0).
        """
        s = self.settings
        total_clips = self.num_clips(inputs)
        clips = clips if clips is not None else range(total_clips)
        context = context or MotionContext()
        if clips.start != context.next_clip:
            raise InputError(
                f"segment starts at clip {clips.start} but the motion context continues clip {context.next_clip}; "
                "give the context returned after the clip before this segment", "context",
            )
        if clips.stop > total_clips:
            raise InputError(f"clip range {clips} goes past the audio's {total_clips} clips", "clips")
        _, height, width = inputs.reference_image.shape
        latent_shape = (1, self.net.config.unet.in_channels, s.clip_length, height // 8, width // 8)

        generator = torch.Generator("cpu").manual_seed(s.seed)
        for _ in range(clips.start - context.noise_start):  # replay earlier clips' draws so a resumed run matches
            _draw_clip_randomness(generator, s, (height, width), latent_shape)

        dtype = self.net.denoising_unet.conv_in.weight.dtype
        # A CPU timestep copied to the GPU inside the step loop would make the host wait for the
        # previous step every step (a blocking copy); DDIM itself indexes its tables on the CPU.
        timesteps_on_device = self.scheduler.timesteps.to(self.device)
        total = len(clips) * s.steps
        done = 0
        for clip in clips:
            self._check_cancel()
            if context.frames is None:
                motion = inputs.reference_image[None].expand(MOTION_FRAMES, -1, -1, -1)
            else:
                motion = context.frames * 2 - 1
            drop_rand, noise = _draw_clip_randomness(generator, s, (height, width), latent_shape)
            trace = lambda name, tensor, clip=clip: self.trace(f"clip{clip}.{name}", tensor)  # noqa: E731
            trace("initial_noise", noise)
            if drop_rand is not None:
                keep = motion_keep_mask(drop_rand, inputs.face_region, s.motion_drop_rate)
                trace("drop_rand", drop_rand)
                trace("drop_keep", keep)
                motion = motion * keep
            trace("ref_image", torch.cat([inputs.reference_image[None], motion])[None])
            reference = self._reference(inputs, motion)
            features = inputs.audio_features[clip * s.clip_length : (clip + 1) * s.clip_length]
            audio_tokens = self.net.audioproj(features[None].to(self.device, dtype))
            trace("audio_tokens", audio_tokens)
            latents = noise.to(self.device) * self.scheduler.init_noise_sigma
            for j, (t, t_device) in enumerate(zip(self.scheduler.timesteps, timesteps_on_device)):
                self._check_cancel()
                out = guided_denoise_step(
                    self.net, latents, t_device, inputs.identity, audio_tokens, reference, s.guidance_scale, s.weights,
                    between_blocks=self._check_cancel,
                )
                step = self.scheduler.step(out.guided.float(), t, latents, eta=0.0)
                latents = step.prev_sample
                trace(f"step{j}.model_output", out.guided)
                trace(f"step{j}.latents", latents)
                done += 1
                if self.progress is not None:
                    # DDIM's x0 prediction, (1, C, F, h, w) -> frames first: a view, nothing computed.
                    x0 = step.pred_original_sample[0].transpose(0, 1)
                    self.progress(Progress(clip, len(clips), j + 1, s.steps, done, total, preview=previewer(x0, SD15)))
            trace("final_latents", latents)
            with self.placement.use(self.codec.vae):
                frames = self.codec.decode(latents[0].transpose(0, 1))
            context = MotionContext(clip + 1, frames[-MOTION_FRAMES:].clone(), context.noise_start)
            yield frames, context
