"""Hallo3 one stage at a time, under the method names `HalloPipeline` uses, so the ComfyUI nodes (and scripts)
drive either family the same way:

    face = pipeline.analyze_face(image, framing="crop")          # landmarks, identity, the portrait at 480 x 720
    audio = pipeline.encode_audio(waveform, sample_rate)         # wav2vec2 windows padded to whole segments
    reference = pipeline.prepare_reference(face)
    settings = pipeline.settings(steps=50, guidance_scale=3.5, seed=42)
    segment = pipeline.sample(reference, audio, settings, prompt="A woman talking")   # a `frames.FrameSegment`

A run made this way gives the frames `Hallo3Pipeline.animate` writes for the same inputs and seed (the same
calls in the same order of random draws). Options Hallo3 has no use for (image_size, clip_length, region
weights, modes other than auto) are refused unless at their defaults, as on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..config import CROP_SCALE, FPS
from ..errors import Cancelled, InputError
from ..frames import FrameSegment
from ..latent_preview import COGVIDEOX, RGBFit, previewer
from ..progress import Progress
from .face import Hallo3Face
from .family import DEFAULT_PROMPT, FAMILY, Hallo3Settings, check_prompt, refuse_hallo_options

AUTO = "auto"


@dataclass(frozen=True)
class Hallo3Reference:
    """HALLO_REFERENCE for Hallo3: the prepared portrait and identity. Nothing runs a network here: the
    reference latent's noise is drawn after the first segment's encode (the release's order), so the sampler
    makes it."""

    face: Any  # the analysed face (`analyze_face`)

    @property
    def portrait(self):
        return self.face.portrait

    @property
    def working_size(self) -> tuple[int, int]:
        return self.face.portrait.working_size


class StepReport:
    """The segment loop's `on_step` (call it) and `on_reference`: one `Progress` over all steps of all segments,
    carrying a preview of the segment's predicted latents, then the cancel check (so Cancel stops inside a
    segment, after the step that is running)."""

    def __init__(self, segments: int, steps: int, progress: Callable[[Progress], None] | None,
                 should_cancel: Callable[[], bool] | None):
        self.segments, self.steps = segments, steps
        self.progress, self.should_cancel = progress, should_cancel
        self.rgb = None  # the preview colours, fitted on the reference portrait when a preview first asks

    def reference(self, latent: torch.Tensor, image: torch.Tensor) -> None:
        self.rgb = RGBFit(latent, image)

    def __call__(self, segment: int, step, x, denoised) -> None:
        if self.progress is not None:
            done = segment * self.steps + step.index + 1
            self.progress(Progress(segment, self.segments, step.index + 1, self.steps, done,
                                   self.segments * self.steps, unit="segment",
                                   preview=previewer(denoised[0], COGVIDEOX, self.rgb)))
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("generation was cancelled")


class Hallo3Stages:
    """Mixed into `Hallo3Pipeline` (which provides `generator`, `files`, `placement`, `dtype`)."""

    generator: Any
    files: Any
    placement: Any
    dtype: torch.dtype

    # ------------------------------------------------------------------------------------------
    # 1. face
    # ------------------------------------------------------------------------------------------
    def analyze_face(self, image, image_size: int | None = None, face_expand_ratio: float | None = None, *,
                     framing: str = "crop", crop_scale: float = CROP_SCALE.default, multiple_faces: str = "error",
                     allow_missing_identity: bool = False) -> Hallo3Face:
        """The photo analysed for these weights (`face.analyze_face`): what the face node holds, and later
        pastes the frames back with (`Hallo3Face.paste_back`). `image_size` must stay Hallo's default (Hallo3
        works at its weights' own size); `face_expand_ratio` None: the release's 1.2 for the face box."""
        from .preprocess import FACE_BOX_EXPAND_RATIO

        if image_size is not None:
            refuse_hallo_options(image_size=image_size)
        return self.generator.analyze_face(
            image, framing, crop_scale, FACE_BOX_EXPAND_RATIO if face_expand_ratio is None else face_expand_ratio,
            multiple_faces=multiple_faces, allow_missing_identity=allow_missing_identity,
        )

    # ------------------------------------------------------------------------------------------
    # 2. audio
    # ------------------------------------------------------------------------------------------
    def audio_chunk_seconds(self, mode: str = AUTO) -> float | None:
        return None  # one pass over the whole track, as the release encodes it

    def resolve_mode(self, mode: str = AUTO) -> str:
        if mode != AUTO:
            raise InputError(f"mode {mode!r} is Hallo's; Hallo3 has one sampling loop, so use mode 'auto'", "mode")
        return AUTO

    def encode_audio(self, waveform, sample_rate: int, clip_length: int | None = None, separate_vocals: bool = False,
                     mode: str = AUTO):
        """wav2vec2 windows of any waveform, padded to whole segments (`AudioFeatures`; `.frames` is the true
        length)."""
        self.resolve_mode(mode)
        if clip_length is not None:
            refuse_hallo_options(clip_length=clip_length)
        return self.generator.encode_audio(waveform, sample_rate, separator=self.vocal_separator(separate_vocals))

    def vocal_separator(self, wanted: bool = True):
        """The model folder's vocal separator when `wanted` (its file checked first), else None."""
        if not wanted:
            return None
        from ..audio.separation import VocalSeparator

        self.files.require("vocal_separator")
        return VocalSeparator(self.files.vocal_separator)

    # ------------------------------------------------------------------------------------------
    # 3. reference
    # ------------------------------------------------------------------------------------------
    def prepare_reference(self, face, image_rows: bool = False) -> Hallo3Reference:
        if not hasattr(face, "portrait"):
            raise InputError("this face was analysed by a Hallo pipeline; run Hallo Face Mask (analyze_face) with "
                             "the Hallo3 pipeline", "face")
        return Hallo3Reference(face)

    # ------------------------------------------------------------------------------------------
    # 4. sampling
    # ------------------------------------------------------------------------------------------
    def settings(self, mode: str = AUTO, **settings: Any) -> Hallo3Settings:
        return FAMILY.settings(self.files, mode, **settings)

    def step_memory(self, reference: Hallo3Reference, audio) -> int:
        """Bytes one segment's sampling needs beside the main DiT's weights (what the sampler node asks ComfyUI
        to keep free); each network's own phase asks for its share as it comes (`segments.phase_memory`)."""
        from .segments import phase_memory

        return phase_memory("main_dit", reference.working_size, self.dtype)

    def text_states(self, prompt: str) -> torch.Tensor:
        """T5 states of `prompt`, T5 on the device only while it encodes (cached for the last few prompts,
        `Hallo3Generator.encode_prompt`)."""
        check_prompt(prompt)
        return self.generator.encode_prompt(prompt)

    def sample_segment(self, reference, audio, settings, plan, index: int, **kwargs) -> FrameSegment:
        """Independent segments (`independent.py`) are Hallo's: Hallo3 renders the whole video in one go."""
        raise InputError("independent segments (a segment plan) render with Hallo and Hallo2 weights only; Hallo3 "
                         "renders the whole video in one go: disconnect the plan (or load Hallo/Hallo2 weights)",
                         "plan")

    def sample(
        self,
        reference: Hallo3Reference,
        audio,
        settings: Hallo3Settings,
        *,
        prompt: str | None = None,
        start_frame: int = 0,
        end_frame: int | None = None,
        previous: FrameSegment | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> FrameSegment:
        """The video's frames from the start up to `end_frame` (None: the whole audio), as the command line
        writes them (the release's uint8 rounding, a square photo's crop), in [0, 1]. Hallo3 renders from the
        first frame in one go: a later `start_frame` or a `previous` segment is refused."""
        from .segments import LoopSettings, segment_count

        if not isinstance(reference, Hallo3Reference):
            raise InputError("reference must come from a Hallo3 pipeline's prepare_reference (Hallo Reference "
                             "Encode with the Hallo3 model)", "reference")
        if previous is not None:
            raise InputError("Hallo3 renders a video in one go and cannot continue a previous segment yet; leave "
                             "'previous' unconnected and set end_frame to 0", "previous")
        if start_frame:
            raise InputError(f"start_frame {start_frame}: Hallo3 renders from the first frame (each segment "
                             "continues the one before); use 0", "start_frame")
        total = audio.frames
        stride = LoopSettings.from_config(self.generator.config).stride
        end = total if not end_frame else end_frame
        if end < 0 or end > total:
            raise InputError(f"end_frame {end_frame} is past the audio's {total} frames; use 0 (the whole audio) "
                             "or a smaller frame", "end_frame")
        if end != total and end % stride:
            raise InputError(f"end_frame {end_frame}: Hallo3 segments add {stride} frames each, so end on a "
                             f"multiple of {stride} (or 0 for the whole audio)", "end_frame")
        text = self.text_states(prompt or DEFAULT_PROMPT)
        conditions = self.generator.conditions(reference.face, audio, text)
        segments = segment_count(end, stride)
        steps = settings.steps

        report = StepReport(segments, steps, progress, should_cancel)
        parts = []
        for segment in self.generator.generate(conditions, settings.seed, steps=steps, guidance=settings.guidance_scale,
                                               on_step=report, on_reference=report.reference):
            u8 = torch.from_numpy(reference.face.video_frames(segment.frames))
            parts.append(u8.permute(0, 3, 1, 2).float().div(255))
            if segment.index + 1 >= segments:
                break
        frames = torch.cat(parts)[:end]
        return FrameSegment(frames, 0, total, FPS, None)
