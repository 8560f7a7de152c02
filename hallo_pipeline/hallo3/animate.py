"""`Hallo3Pipeline`: what `families.load_pipeline` gives for Hallo3 weights, the object the command line runs.

    pipeline = FAMILY.load(files, device="cuda", dtype=torch.bfloat16)
    pipeline.animate("face.jpg", "speech.wav", "out.mp4", FAMILY.settings(files, steps=50), prompt="A man talking")

`animate` checks everything cheap first (`Hallo3Family.check_inputs`), prepares the photo, the audio and the
prompt (`Hallo3Generator.prepare`), and streams each segment's frames into the mp4 as it is made (pasted back
into the photo one frame at a time with framing "crop"), with the original audio: a long video never holds
more than one segment's frames in memory. The stage-by-stage calls the nodes make are `stages.Hallo3Stages`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import CROP_SCALE, FEATHER, FPS, MAX_SIDE
from ..devices import Placement
from ..progress import Progress
from .family import DEFAULT_PROMPT, FAMILY, Hallo3Files, Hallo3Settings
from .pipeline import Hallo3Generator
from .stages import Hallo3Stages, StepReport

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
             dtype: str | torch.dtype | None = None, placement: Placement | None = None, *, fp8: bool = False,
             offload_blocks: int = 0, tiled_decode: bool = False) -> "Hallo3Pipeline":
        """`dtype` None or "auto": bfloat16 on a GPU (the release runs its whole engine in bf16, SPEC §1; float16's
        narrow range is not what it was trained with), float32 on the CPU. `placement`: where the networks wait
        and compute (default: on a GPU each waits on the host and computes there only in its phase;
        `pipeline.default_placement`); `fp8`, `offload_blocks`, `tiled_decode`: `MemoryOptions`."""
        from ..devices import resolve_device, resolve_dtype
        from ..fp8 import require_fp8
        from .pipeline import MemoryOptions

        device = resolve_device(device) if placement is None else placement.device
        if dtype in (None, "auto"):
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        dtype = resolve_dtype(dtype, device)
        if fp8:
            require_fp8(device)
        memory = MemoryOptions(fp8=fp8, offload_blocks=offload_blocks, tiled_decode=tiled_decode)
        held = ["fp8 weights"] if fp8 else []
        held += [f"{offload_blocks} layers on the host"] if offload_blocks else []
        held += ["tiled VAE decode"] if tiled_decode else []
        log.info("loading %s as %s on %s%s", files.describe(), str(dtype).removeprefix("torch."), device,
                 f" ({', '.join(held)})" if held else "")
        generator = Hallo3Generator.from_model_folder(files.root, device=device, dtype=dtype, placement=placement,
                                                      memory=memory)
        return cls(files, generator, generator.placement, dtype)

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
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
        max_side: int = MAX_SIDE.default,
        feather: float = FEATHER.default,
        color_match: bool = True,
        **hallo_options: Any,
    ) -> Path:
        """Portrait + speech -> mp4 (h264 + AAC, 25 fps) with the original audio cut to the video.

        `image`: a file path or an image (PIL, numpy); `audio`: a file path or a (waveform, sample_rate) pair.
        With `framing="crop"` (the default) the model animates a rectangle of its working aspect around the face
        (`crop_scale` x the face), and every frame is pasted back into the photo (`feather`, `color_match`,
        `max_side`: see `framing.PasteBack`), so the video has the photo's size and aspect ratio (even sides; the
        long side at most `max_side` unless 0). `framing="stretch"` is the release: the video has the working size
        of the weights (720 x 480 for the release), or its height squared for a square photo (SPEC §9.3), and
        the paste-back options must stay at their defaults. `hallo_options` (image_size, clip_length, weights)
        are accepted only at their defaults, where they change nothing (`refuse_hallo_options`).
        Frames are streamed into the file one at a time as each segment is made.
        Returns the final path (absolute, `~` expanded)."""
        from ..audio.io import load_audio
        from ..video import VideoWriter
        from .preprocess import FACE_BOX_EXPAND_RATIO
        from .segments import LoopSettings, segment_count

        settings = settings if settings is not None else FAMILY.settings(self.files)
        pasted = {"max_side": max_side, "feather": feather, "color_match": color_match}
        target = FAMILY.check_inputs(
            self.files, image, audio, output, prompt=prompt, face_expand_ratio=face_expand_ratio,
            separate_vocals=separate_vocals, framing=framing, crop_scale=crop_scale, paste_options=pasted,
            **hallo_options,
        )
        waveform, sample_rate = load_audio(audio) if isinstance(audio, (str, Path)) else audio
        separator = self.vocal_separator(separate_vocals)
        face, conditions = self.generator.prepare(
            image, waveform, sample_rate, prompt, separator=separator,
            expand_ratio=FACE_BOX_EXPAND_RATIO if face_expand_ratio is None else face_expand_ratio,
            framing=framing, crop_scale=crop_scale,
        )
        paste = face.paste_back(**pasted) if face.framing is not None else None
        stride = LoopSettings.from_config(self.generator.config).stride
        segments, steps = segment_count(conditions.frames, stride), settings.steps
        log.info("%d frames in %d segment(s) of %d steps", conditions.frames, segments, steps)

        report = StepReport(segments, steps, progress, should_cancel)

        with VideoWriter(target.path, fps=FPS, audio=waveform, sample_rate=sample_rate) as writer:
            for segment in self.generator.generate(
                conditions, settings.seed, steps=steps, guidance=settings.guidance_scale, on_step=report,
                on_reference=report.reference,
            ):
                # The release's uint8 conversion (truncation), and its crop back to a square photo's shape.
                frames = face.video_frames(segment.frames)
                if paste is None:
                    writer.write(frames)
                    continue
                for frame in frames:  # one full-size photo in memory at a time
                    writer.write(paste.paste(frame)[None])
        return target.path
