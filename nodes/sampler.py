"""HalloSampler: reference + audio -> HALLO_FRAMES, any frame range, continuing a previous segment."""

from __future__ import annotations

from . import comfy_glue as glue
from .api import AUDIO_FEATURES, CATEGORY, FRAMES, MODE_TOOLTIP, MODES, PIPELINE, REFERENCE, io
from .errors import blame

NODE_ID = "HalloSampler"
MAX_FRAME = 1_000_000  # 11 hours at 25 fps


def _weight(name: str, what: str):
    return io.Float.Input(
        name, default=1.0, min=0.0, max=5.0, step=0.05,
        tooltip=f"How strongly the audio drives {what} (1.0 = as trained; 0 = not at all).",
    )


class HalloSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE_ID,
            display_name="Hallo Sampler",
            category=f"{CATEGORY}/sampling",
            description="Generates the talking-head frames clip by clip (25 fps), each clip continuing from the last "
            "frames of the one before. Long audio can be rendered in segments: set a frame range and connect the "
            "previous segment.",
            inputs=[
                PIPELINE.Input("pipeline", tooltip="From Hallo Model Loader."),
                REFERENCE.Input("reference", tooltip="From Hallo Reference Encode."),
                AUDIO_FEATURES.Input("audio", tooltip="From Hallo Audio Embed (its clip length is used)."),
                _weight("pose_weight", "head pose (the region outside the face)"),
                _weight("face_weight", "facial expression (the face without the lips)"),
                _weight("lip_weight", "the lips"),
                io.Int.Input("steps", default=40, min=1, max=200, tooltip="Denoising (DDIM) steps per clip. Hallo: 40."),
                io.Float.Input("cfg", default=3.5, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance scale (1.0 = no guidance, one network pass per step). Hallo: 3.5."),
                io.Int.Input(
                    "seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                    tooltip="Noise seed. The same seed gives the same video, also when it is rendered in segments.",
                ),
                io.Combo.Input("mode", options=MODES, default="auto",
                               tooltip=MODE_TOOLTIP + " auto here follows the mode Hallo Audio Embed used."),
                io.Int.Input(
                    "start_frame", default=0, min=0, max=MAX_FRAME,
                    tooltip="First frame of this segment, a multiple of the clip length. With 'previous' connected it "
                    "is taken from there (leave 0). Without it, a later start begins from the portrait (a visible seam).",
                ),
                io.Int.Input(
                    "end_frame", default=0, min=0, max=MAX_FRAME,
                    tooltip="Frame to stop before; 0 = the end of the audio. Segments end on whole clips, so use a "
                    "multiple of the clip length (or 0).",
                ),
                FRAMES.Input(
                    "previous", optional=True,
                    tooltip="The segment this one continues: its last frames are the motion context, so the joined "
                    "video has no seam. If it already reaches the end of the audio, this segment is empty.",
                ),
            ],
            outputs=[FRAMES.Output("frames", display_name="frames", tooltip="The generated segment, for Hallo Video Stitch.")],
        )

    @classmethod
    def execute(cls, pipeline, reference, audio, pose_weight: float, face_weight: float, lip_weight: float, steps: int,
                cfg: float, seed: int, mode: str, start_frame: int, end_frame: int, previous=None) -> io.NodeOutput:
        from ..hallo_pipeline.config import RegionWeights

        with blame(NODE_ID, "mode"):
            mode = _mode(mode, audio)
        settings = pipeline.settings(
            mode, steps=steps, guidance_scale=cfg, seed=seed, clip_length=audio.clip_length,
            weights=RegionWeights(pose=pose_weight, face=face_weight, lip=lip_weight),
        )
        start, end, context = _frame_range(audio, start_frame, end_frame, previous)
        if start >= audio.frames:  # the previous segment already reached the end: nothing left to render
            return io.NodeOutput(_empty_segment(previous))
        memory = glue.working_memory(reference.image_size, audio.clip_length, pipeline.dtype)
        with blame(NODE_ID, "audio"), pipeline.placement.computing(memory):
            segment = pipeline.sample(
                reference, audio.features, settings, start_frame=start, end_frame=end, context=context,
                progress=glue.ProgressReporter(), should_cancel=glue.cancel_check,
            )
        return io.NodeOutput(segment)


def _mode(mode: str, audio) -> str:
    """The audio's mode for auto; another one only where it cannot change the features (short audio)."""
    from ..hallo_pipeline.errors import InputError
    from ..hallo_pipeline.pipeline import HALLO2_AUDIO_CHUNK_SECONDS

    if mode == "auto":
        return audio.mode
    if mode != audio.mode and audio.seconds > HALLO2_AUDIO_CHUNK_SECONDS:
        raise InputError(
            f"mode {mode!r} differs from the mode Hallo Audio Embed used ({audio.mode!r}), and this "
            f"{audio.seconds:.0f}-second audio is embedded differently in each; set both nodes to the same mode "
            "(or leave the sampler on auto)"
        )
    return mode


def _empty_segment(previous):
    """No frames, at the end of the audio, so a workflow made for long audio also runs on short audio."""
    from ..hallo_pipeline.pipeline import FrameSegment

    frames = previous.frames[:0]
    return FrameSegment(frames, previous.end_frame, previous.total_frames, previous.fps, previous.context)


def _frame_range(audio, start_frame: int, end_frame: int, previous):
    """(start, end or None, motion context) of the segment to render, checked against the audio."""
    from ..hallo_pipeline.errors import InputError
    from ..hallo_pipeline.sampling.clip_loop import MotionContext

    clip, total = audio.clip_length, audio.frames
    context = None
    if previous is not None:
        with blame(NODE_ID, "previous"):
            if previous.total_frames != total:
                raise InputError(
                    f"the previous segment belongs to an audio of {previous.total_frames} frames, this audio has "
                    f"{total}; connect a segment made from the same Hallo Audio Embed output"
                )
            if previous.end_frame % clip and previous.end_frame < total:
                raise InputError(
                    f"the previous segment ends at frame {previous.end_frame}, inside a clip of {clip} frames; "
                    f"render it with an end_frame that is a multiple of {clip}"
                )
        with blame(NODE_ID, "start_frame"):
            if start_frame not in (0, previous.end_frame):
                raise InputError(
                    f"start_frame {start_frame} does not match the previous segment, which ends at frame "
                    f"{previous.end_frame}; leave start_frame at 0 (it is taken from 'previous') or disconnect 'previous'"
                )
        start, context = previous.end_frame, previous.context
    else:
        start = start_frame
        with blame(NODE_ID, "start_frame"):
            if start >= total:
                raise InputError(f"start_frame {start} is past the end of the audio ({total} frames); use a smaller value")
            if start % clip:
                raise InputError(
                    f"start_frame {start} is not a multiple of the clip length {clip}; segments start at whole clips "
                    f"(e.g. {start - start % clip} or {start - start % clip + clip})"
                )
        if start:
            context = MotionContext(next_clip=start // clip)  # motion frames from the portrait, noise as in a full run
    if end_frame == 0 or end_frame >= total:
        return start, None, context
    with blame(NODE_ID, "end_frame"):
        if end_frame <= start:
            raise InputError(f"end_frame {end_frame} is not after the segment's start (frame {start}); use a larger value or 0 for the end")
        if end_frame % clip:
            below = end_frame - end_frame % clip
            raise InputError(
                f"end_frame {end_frame} is not a multiple of the clip length {clip}, so the next segment could not "
                f"continue from it; use {below if below > start else below + clip} or {below + clip} (or 0 for the end of the audio)"
            )
    return start, end_frame, context
