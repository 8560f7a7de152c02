"""`Hallo3Pipeline`: what `families.load_pipeline` gives for Hallo3 weights, the object the command line runs.

    pipeline = FAMILY.load(files, device="cuda", dtype=torch.bfloat16)
    pipeline.animate("face.jpg", "speech.wav", "out.mp4", FAMILY.settings(files, steps=50), prompt="A man talking")

`animate` checks everything cheap first (`Hallo3Family.check_inputs`), prepares the photo, the audio and the
prompt (`Hallo3Generator.prepare`), and streams each segment's frames into the mp4 as it is made, with the
original audio: a long video never holds more than one segment's frames in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import FPS
from ..devices import Placement
from ..progress import Progress
from .family import DEFAULT_PROMPT, FAMILY, Hallo3Files, Hallo3Settings
from .pipeline import Hallo3Generator
from .stages import Hallo3Stages, step_callback

log = logging.getLogger("hallo_pipeline")


class Hallo3Pipeline(Hallo3Stages):
    def __init__(self, files: Hallo3Files, generator: Hallo3Generator, placement: Placement | None = None,
                 dtype: torch.dtype = torch.float32):
        self.files, self.generator, self.dtype = files, generator, dtype
        self.placement = placement if placement is not None else Placement(torch.device("cpu"))

    # Every network is placed on its own (`placement.use`), so nothing is held through `placement.computing()`.
    placement_core = None

    @classmethod
    def load(cls, files: Hallo3Files, device: str | torch.device | None = None,
             dtype: str | torch.dtype | None = None, placement: Placement | None = None) -> "Hallo3Pipeline":
        """`dtype` None or "auto": bfloat16 on a GPU (the release runs its whole engine in bf16, SPEC §1; float16's
        narrow range is not what it was trained with), float32 on the CPU."""
        from ..devices import resolve_device, resolve_dtype

        device = resolve_device(device)
        if dtype in (None, "auto"):
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        dtype = resolve_dtype(dtype, device)
        log.info("loading %s as %s on %s", files.describe(), str(dtype).removeprefix("torch."), device)
        placement = placement if placement is not None else Placement(device)
        return cls(files, Hallo3Generator.from_model_folder(files.root, device=device, dtype=dtype), placement, dtype)

    @property
    def variant(self) -> str:
        return self.files.variant

    def animate(
        self,
        image,
        audio,
        output: str | Path,
        settings: Hallo3Settings | None = None,
        *,
        prompt: str = DEFAULT_PROMPT,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        face_expand_ratio: float | None = None,
        separate_vocals: bool = False,
        **hallo_options: Any,
    ) -> Path:
        """Portrait + speech -> mp4 (h264 + AAC, 25 fps) with the original audio cut to the video.

        `image`: a file path or an image (PIL, numpy); `audio`: a file path or a (waveform, sample_rate) pair.
        The video has the working size of the weights (720 x 480 for the release), or its height squared for a
        square photo (SPEC §9.3). `hallo_options` (image_size, clip_length, weights, framing and paste-back
        options) are accepted only at their defaults, where they change nothing (`refuse_hallo_options`).
        Returns the final path (absolute, `~` expanded)."""
        from ..audio.io import load_audio
        from ..video import VideoWriter
        from .preprocess import FACE_BOX_EXPAND_RATIO, frames_to_uint8
        from .segments import LoopSettings, segment_count

        settings = settings if settings is not None else FAMILY.settings(self.files)
        target = FAMILY.check_inputs(
            self.files, image, audio, output, prompt=prompt, face_expand_ratio=face_expand_ratio,
            separate_vocals=separate_vocals, **hallo_options,
        )
        waveform, sample_rate = load_audio(audio) if isinstance(audio, (str, Path)) else audio
        separator = None
        if separate_vocals:
            from ..audio.separation import VocalSeparator

            separator = VocalSeparator(self.files.vocal_separator)
        portrait, conditions = self.generator.prepare(
            image, waveform, sample_rate, prompt, separator=separator,
            expand_ratio=FACE_BOX_EXPAND_RATIO if face_expand_ratio is None else face_expand_ratio,
        )
        stride = LoopSettings.from_config(self.generator.config).stride
        segments, steps = segment_count(conditions.frames, stride), settings.steps
        log.info("%d frames in %d segment(s) of %d steps", conditions.frames, segments, steps)

        on_step = step_callback(segments, steps, progress, should_cancel)

        with VideoWriter(target.path, fps=FPS, audio=waveform, sample_rate=sample_rate) as writer:
            for segment in self.generator.generate(
                conditions, settings.seed, steps=steps, guidance=settings.guidance_scale, on_step=on_step
            ):
                # The release's uint8 conversion (truncation) and its crop back to a square photo's shape.
                writer.write(frames_to_uint8(segment.frames, square=portrait.square).numpy())
        return target.path
