"""Hallo3's segment loop (SPEC §11): one video, 49 frames at a time, each segment continuing from the last
two frames of the one before.

    conditions = VideoConditions(image, reference, face_embedding, text, audio.features, audio.frames)
    for segment in generate_segments(nets, vae, conditions, SeededNoise(seed), LoopSettings.from_config(cfg)):
        write(segment.frames)                       # (k, 3, H, W) in [0, 1]: the new frames, cut to the audio

A generator, so a long audio streams: what a segment needs from the one before is its last audio window and
its motion frames; everything else is dropped once the segment is handed out.

Per segment, in the release's order of random draws (SPEC §11, §7.4): the motion-frame drop map, the posterior
noise of the 3-frame encode [image, motion1, motion2] (segment 0: then the reference encode's), the sampler's
draws. The release also prepares a concat latent after the last segment; its draws come after everything
this video uses, so it is not made here (`motion_concat` is the step, should anyone need it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..devices import Placement
from ..errors import InputError
from .config import Hallo3Config
from .noise import NoiseSource
from .preprocess import drop_motion_pixels, motion_drop_map
from .sampler import GUIDANCE_SCALE, STEPS, Schedule, Step, guided_v_prediction, sample


@dataclass(frozen=True)
class LoopSettings:
    steps: int = STEPS.default
    guidance: float = GUIDANCE_SCALE
    segment_frames: int = 49  # video frames the DiT makes per segment
    latent_frames: int = 13  # their latent frames (1 + 48 / 4)
    motion_frames: int = 2  # frames carried from one segment into the next (and dropped from the output)
    mask_rate: float = 0.1  # fraction of motion-frame pixels zeroed in every segment

    @classmethod
    def from_config(cls, config: Hallo3Config, steps: int = STEPS.default, guidance: float = GUIDANCE_SCALE
                    ) -> "LoopSettings":
        seg = config.segment
        return cls(
            steps=STEPS.check(steps),
            guidance=guidance,
            segment_frames=config.dit.num_frames,
            latent_frames=config.dit.latent_frames,
            motion_frames=seg.n_motion_frame,
            mask_rate=seg.mask_rate,
        )

    @property
    def stride(self) -> int:
        """New frames per segment (49 - 2 = 47)."""
        return self.segment_frames - self.motion_frames


@dataclass(frozen=True)
class VideoConditions:
    """What one video is made from, all prepared (SPEC §9-§10, §8)."""

    image: torch.Tensor  # (1, 3, H, W) in [-1, 1] at the working size: frame 0 of every 3-frame encode
    reference: torch.Tensor  # (1, 3, H, W) in [-1, 1]: the face-box image, for the reference latent
    face_embedding: torch.Tensor  # (1, 512) raw insightface embedding
    text: torch.Tensor  # (1, L, D) T5 states of the prompt (the unconditional half is zeros)
    audio: torch.Tensor  # (N, 5, layers, channels) wav2vec2 windows, N padded to whole 49-frame clips
    frames: int  # the true audio length in video frames: the video is cut to it


@dataclass(frozen=True)
class SegmentOutput:
    index: int
    frames: torch.Tensor  # (k, 3, H, W) float32 in [0, 1] on the CPU: this segment's new frames, cut to the audio
    concat: torch.Tensor  # (1, T, 16, h, w) the concat latent the DiT saw
    audio: torch.Tensor  # (1, 49, 5, layers, channels) its audio window
    latent: torch.Tensor  # (1, T, 16, h, w) the sampler's output (scaled, as the VAE decodes it)
    decoded: torch.Tensor  # (1, 3, 49, H, W) the decoder's raw output (not clamped), on the CPU


# What each phase needs on the device beside the weights computing in it, at the release's 480 x 720 in bf16: GB
# counted on `meta` (benchmarks/results/hallo3-full-estimate-bf16.md; the main DiT's with a streamed layer). It
# grows with the frame's area and the dtype's width.
PHASE_ACTIVATIONS_GB = {
    "vae_encode": 3.33, "reference_bank": 0.48, "main_dit": 5.02, "vae_decode": 16.56, "vae_decode_tiled": 4.78,
}
# Allocator rounding and library workspaces on top of the counted tensors.
PHASE_SLACK = 1.1


def phase_memory(phase: str, size: tuple[int, int], dtype: torch.dtype) -> int:
    """Bytes `phase` needs beside its weights for frames of `size` (H, W) computed in `dtype`: the hint a
    placement sharing the device (ComfyUI's) gets, so it frees that much first (e.g. offloads the main DiT
    before the decode)."""
    height, width = size
    scale = height * width / (480 * 720) * torch.finfo(dtype).bits / 16
    return int(PHASE_ACTIVATIONS_GB[phase] * 1e9 * scale * PHASE_SLACK)


def segment_count(frames: int, stride: int) -> int:
    """Segments whose new frames reach into the first `frames` frames.

    The release runs ceil(padded / 47) segments over the audio padded to whole 49-frame clips (N = 49 gives
    2 segments); a segment whose new frames all lie past the true length only feeds frames that are cut, and
    nothing before it depends on it, so it is left out: the video is the same, one segment cheaper."""
    return math.ceil(frames / stride)


def audio_window(features: torch.Tensor, index: int, previous: torch.Tensor | None, settings: LoopSettings
                 ) -> torch.Tensor:
    """(segment_frames, 5, layers, channels) window of segment `index` (SPEC §11.3): the last `motion_frames`
    rows of the previous window (zeros for segment 0) followed by this segment's `stride` rows, the tail
    padded by repeating its last row."""
    m, stride = settings.motion_frames, settings.stride
    if previous is None:
        prefix = features.new_zeros((m, *features.shape[1:]))
    else:
        prefix = previous[-m:]
    window = torch.cat([prefix, features[index * stride : (index + 1) * stride]])
    short = settings.segment_frames - window.shape[0]
    if short > 0:
        window = torch.cat([window, window[-1:].expand(short, *window.shape[1:])])
    return window


def guided_batch(main, concat: torch.Tensor, text: torch.Tensor, face_tokens: torch.Tensor, audio: torch.Tensor,
                 reference) -> dict:
    """The main DiT's conditioning for a CFG batch [uncond, cond] (SPEC §8): `text` (2, L, D) and `face_tokens`
    already in that layout, `concat` (1, T, z, h, w) and the audio window `audio` (1, frames, 5, layers, channels)
    for the conditional half; the unconditional half hears zeros before the projection (AudioProj(0) != 0)."""
    return {
        "concat": concat.expand(2, -1, -1, -1, -1),
        "text": text,
        "face_tokens": face_tokens,
        "audio_tokens": main.project_audio(torch.cat([torch.zeros_like(audio), audio])),
        "reference": reference,
    }


def to_latent_frames(latent: torch.Tensor) -> torch.Tensor:
    """VAE layout (b, z, t, h, w) -> DiT layout (b, t, z, h, w) (and back: the same permutation)."""
    return latent.permute(0, 2, 1, 3, 4)


def encode(vae, frames: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
    """A posterior sample of `frames` (b, 3, T, H, W) with a fresh draw -> DiT layout (b, t, z, h, w)."""
    return to_latent_frames(vae.encode(frames, noise.randn(vae.latent_shape(frames.shape))))


def motion_concat(vae, image: torch.Tensor, motion: torch.Tensor, noise: NoiseSource, settings: LoopSettings
                  ) -> torch.Tensor:
    """The concat latent (1, T, z, h, w) of a segment (SPEC §11.2, §11.5): [image, drop(motion)] through the
    VAE (3 frames -> 1 latent frame, QUIRK kept), then zero latent frames. One drop map for all motion
    frames, drawn before the posterior noise."""
    size = image.shape[-2:]
    dropped = drop_motion_pixels(motion, motion_drop_map(noise, size), settings.mask_rate)
    first = encode(vae, torch.cat([image[:, :, None], dropped], dim=2), noise)
    zeros = first.new_zeros((first.shape[0], settings.latent_frames - first.shape[1], *first.shape[2:]))
    return torch.cat([first, zeros], dim=1)


def output_frames(decoded: torch.Tensor) -> torch.Tensor:
    """The decoder's (1, 3, T, H, W) in ~[-1, 1] -> (T, 3, H, W) in [0, 1], as the release writes them."""
    return ((decoded[0].transpose(0, 1) + 1) / 2).clamp(0, 1)


def next_motion(frames: torch.Tensor, settings: LoopSettings) -> torch.Tensor:
    """The next segment's motion frames (1, 3, m, H, W) in [-1, 1]: the last `motion_frames` frames as written
    (after the clamp, SPEC §11.5)."""
    return frames[-settings.motion_frames :].transpose(0, 1)[None] * 2 - 1


def _check(conditions: VideoConditions, settings: LoopSettings) -> None:
    if conditions.frames < 1:
        raise InputError(f"the audio is {conditions.frames} frames long; at least one frame is needed", "audio")
    rows = conditions.audio.shape[0]
    # Fewer rows than frames cannot be right; more are expected (the release's padding to whole clips, whose
    # silent rows the last window hears, so they must be passed, not cut).
    if rows < conditions.frames:
        raise InputError(
            f"the audio features have {rows} rows for {conditions.frames} frames; pass all rows of "
            "encode_audio's features (padded to whole segments)", "audio",
        )
    if conditions.image.shape != conditions.reference.shape:
        raise InputError(
            f"image {tuple(conditions.image.shape)} and reference {tuple(conditions.reference.shape)} differ; "
            "prepare both with prepare_portrait", "image",
        )


@torch.no_grad()
def generate_segments(
    nets,
    vae,
    conditions: VideoConditions,
    noise: NoiseSource,
    settings: LoopSettings = LoopSettings(),
    *,
    placement: Placement | None = None,
    tiled_decode: bool = False,
    on_step: Callable[[int, Step, torch.Tensor, torch.Tensor], None] | None = None,
    on_reference: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> Iterator[SegmentOutput]:
    """Run the loop on `placement.device` (default: where the main DiT is, nothing moved); `on_step(segment, step,
    x, denoised)` after each sampler step (progress; raise to cancel); `on_reference(latent, image)` once, before
    the first step, with the reference portrait's latent (z, h, w) and the portrait (3, H, W) in [-1, 1] (a pair
    in this VAE's space that previews fit their colours on; nothing is computed for it).

    Each network computes inside `placement.use(...)`, one at a time: the VAE for a segment's encodes, the
    reference DiT once per video for the bank, the main DiT for the bank's K/V and each segment's sampling, the
    VAE again for the decode. With an offload device set, the main DiT is thus off the device while the VAE
    decodes (the decode's activations are the largest of the loop); the reference K/V (all layers) and the face
    tokens stay on the device for the whole video. `tiled_decode`: the VAE decodes in spatial tiles (less memory,
    slightly different frames; `Hallo3VAE._decode_tiled`)."""
    _check(conditions, settings)
    main, ref_dit = nets.main, nets.reference
    vae_model = getattr(vae, "model", None)  # a stand-in VAE without a module has nothing to move
    vae_modules = () if not isinstance(vae_model, torch.nn.Module) else (vae_model,)
    placement = placement if placement is not None else Placement(next(main.parameters()).device)
    device = placement.device
    image = conditions.image.to(device=device, dtype=torch.float32)
    schedule = Schedule.build(settings.steps)
    text = conditions.text.to(device)
    text = torch.cat([torch.zeros_like(text), text])  # CFG batch [uncond, cond] (SPEC §8)

    size, dtype = tuple(image.shape[-2:]), next(ref_dit.parameters()).dtype
    memory = {phase: phase_memory(phase, size, dtype) for phase in PHASE_ACTIVATIONS_GB}
    decode_phase = "vae_decode_tiled" if tiled_decode else "vae_decode"
    motion = image[:, :, None].expand(-1, -1, settings.motion_frames, -1, -1)  # segment 0: the image repeated
    reference = face_tokens = None
    window = None
    done = 0
    for index in range(segment_count(conditions.frames, settings.stride)):
        first = reference is None
        with placement.use(*vae_modules, memory=memory["vae_encode"]):
            concat = motion_concat(vae, image, motion, noise, settings)
            if first:
                # Once per video, its draw after segment 0's concat encode (the release's order).
                ref_latent = encode(vae, conditions.reference.to(device=device, dtype=torch.float32)[:, :, None],
                                    noise)
                if on_reference is not None:
                    on_reference(ref_latent[0, 0], conditions.reference[0])
        if first:
            with placement.use(ref_dit, memory=memory["reference_bank"]):
                bank, _ = ref_dit.reference_bank(ref_latent)
        window = audio_window(conditions.audio, index, window, settings)
        audio = window[None].to(device)
        with placement.use(main, memory=memory["main_dit"]):
            if first:
                reference = main.reference_kv(bank)
                face_tokens = main.project_face(conditions.face_embedding.to(device).expand(2, -1))
                del bank
            batch = guided_batch(main, concat, text, face_tokens, audio, reference)

            def velocities(x: torch.Tensor, timestep: int, batch=batch) -> tuple[torch.Tensor, torch.Tensor]:
                v = main(latent=x.expand(2, -1, -1, -1, -1), timestep=torch.full((2,), timestep, device=device),
                         **batch)
                return v[:1], v[1:]

            step_callback = None if on_step is None else (lambda step, x, d, i=index: on_step(i, step, x, d))
            latent = sample(
                guided_v_prediction(velocities, settings.guidance), concat.shape, schedule, noise, device=device,
                callback=step_callback,
            )
        with placement.use(*vae_modules, memory=memory[decode_phase]):
            tiling = {"tiled": True} if tiled_decode else {}
            decoded = vae.decode(to_latent_frames(latent), output_device="cpu", **tiling).to(torch.float32)
        frames = output_frames(decoded)
        motion = next_motion(frames, settings).to(device)
        new = frames[settings.motion_frames :][: conditions.frames - done]
        done += new.shape[0]
        yield SegmentOutput(index, new, concat, window[None], latent, decoded)
        # Only the motion frames and the window go on to the next segment; the consumer owns the rest.
        del decoded, frames, new, latent, batch, concat
