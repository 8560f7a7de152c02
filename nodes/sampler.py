"""HalloSampler: reference + audio -> HALLO_FRAMES, any frame range, continuing a previous segment."""

from __future__ import annotations

from ..hallo_pipeline.config import GUIDANCE, REGION_WEIGHT, SEED, STEPS
from ..hallo_pipeline.families import default_prompts, mode_options
from . import comfy_glue as glue
from .api import AUDIO_FEATURES, CATEGORY, FRAMES, MODE_TOOLTIP, PIPELINE, REFERENCE, SEGMENT_PLAN, io
from .errors import blame
from .segment_plan import MAX_SEGMENTS

NODE_ID = "HalloSampler"
MAX_FRAME = 1_000_000  # 11 hours at 25 fps


def _weight(name: str, what: str):
    return io.Float.Input(
        name, default=REGION_WEIGHT.default, min=REGION_WEIGHT.low, max=REGION_WEIGHT.high, step=0.05,
        tooltip=f"How strongly the audio drives {what} (1.0 = as trained; 0 = not at all).",
    )


def _prompt_tooltip() -> str:
    said = "; ".join(f"{name}, empty: \"{prompt}\"" for name, prompt in default_prompts().items())
    return (f"A description of the video, for the models steered by text ({said}): it steers the scene and the "
            "motion. The other models are not steered by text: leave it empty.")


class HalloSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloSampler",
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
                io.Int.Input("steps", default=STEPS.default, min=STEPS.low, max=STEPS.high,
                             tooltip="Denoising (DDIM) steps per clip. Hallo: 40."),
                io.Float.Input("cfg", default=GUIDANCE.default, min=GUIDANCE.low, max=GUIDANCE.high, step=0.1,
                               tooltip="Guidance scale. 1.0 or less = no guidance: "
                               "one network pass per step instead of "
                               "two, so about half the time. Hallo: 3.5."),
                io.Int.Input(
                    "seed", default=SEED.default, min=SEED.low, max=SEED.high, control_after_generate=True,
                    tooltip="Noise seed. The same seed gives the same video, also when it is rendered in segments.",
                ),
                io.Combo.Input("mode", options=mode_options(), default="auto",
                               tooltip=MODE_TOOLTIP + " auto here follows the mode Hallo Audio Embed used."),
                io.Int.Input(
                    "start_frame", default=0, min=0, max=MAX_FRAME,
                    tooltip="First frame of this segment, a multiple of the clip length. With 'previous' connected it "
                    "is taken from there (leave 0). "
                    "Without it, a later start begins from the portrait (a visible seam).",
                ),
                io.Int.Input(
                    "end_frame", default=0, min=0, max=MAX_FRAME,
                    tooltip="Frame to stop before; 0 = the end of the audio. Segments end on whole clips, so use a "
                    "multiple of the clip length (or 0).",
                ),
                FRAMES.Input(
                    "previous", optional=True,
                    tooltip="The segment this one continues: its last frames are the motion context, so the joined "
                    "video has no seam. If it already reaches the end of the audio, this segment is empty. "
                    "Hallo only: Hallo3 renders from the first frame in one go.",
                ),
                # Optional and last, so workflows and prompts saved before it existed load unchanged.
                io.String.Input(
                    "prompt", default="", multiline=True, optional=True, dynamic_prompts=False,
                    placeholder=f"{' / '.join(default_prompts())} only; empty: the default prompt",
                    tooltip=_prompt_tooltip(),
                ),
                SEGMENT_PLAN.Input(
                    "plan", optional=True,
                    tooltip="From Hallo Segment Plan: render only segment 'segment_index' of long audio, started from "
                    "the portrait, for Hallo Segment Join (e.g. one segment per ComfyUI-Distributed participant). "
                    "Leave start_frame and end_frame at 0 and 'previous' unconnected. Hallo and Hallo2 only.",
                ),
                io.Int.Input(
                    "segment_index", default=0, min=0, max=MAX_SEGMENTS - 1, optional=True,
                    tooltip="Which segment of the plan to render, 0 first. With ComfyUI-Distributed connect a "
                    "Distributed Seed set to 0: the master renders segment 0, worker 1 segment 1, and so on.",
                ),
            ],
            outputs=[FRAMES.Output("frames", display_name="frames",
                                   tooltip="The generated segment, for Hallo Video Stitch.")],
        )

    @classmethod
    def execute(cls, pipeline, reference, audio, pose_weight: float, face_weight: float, lip_weight: float, steps: int,
                cfg: float, seed: int, mode: str, start_frame: int, end_frame: int, previous=None,
                prompt: str = "", plan=None, segment_index: int = 0) -> io.NodeOutput:
        from ..hallo_pipeline.config import RegionWeights

        with blame(NODE_ID, "mode"):
            mode = _mode(mode, audio, pipeline)
        with blame(NODE_ID, "steps", inputs=SETTING_INPUTS):
            settings = pipeline.settings(
                mode, steps=steps, guidance_scale=cfg, seed=seed, clip_length=audio.clip_length,
                weights=RegionWeights(pose=pose_weight, face=face_weight, lip=lip_weight),
            )
        _check_segment_inputs(plan, segment_index, start_frame, end_frame, previous)
        memory = pipeline.step_memory(reference, audio)
        report = {"progress": glue.ProgressReporter(), "should_cancel": glue.cancel_check, "prompt": prompt or None}
        # The frame range is planned (and checked) by the library before any clip is sampled.
        with blame(NODE_ID, "audio", inputs=SETTING_INPUTS), pipeline.placement.computing(memory):
            if plan is not None:
                segment = pipeline.sample_segment(reference, audio.features, settings, plan, segment_index, **report)
            else:
                segment = pipeline.sample(reference, audio.features, settings, start_frame=start_frame,
                                          end_frame=end_frame or None, previous=previous, **report)
        return io.NodeOutput(segment)


# The library's names of the settings this node passes on -> this node's inputs.
SETTING_INPUTS = {
    "steps": "steps", "guidance_scale": "cfg", "seed": "seed", "clip_length": "audio", "pose_weight": "pose_weight",
    "face_weight": "face_weight", "lip_weight": "lip_weight", "start_frame": "start_frame", "end_frame": "end_frame",
    "previous": "previous", "prompt": "prompt", "mode": "mode", "plan": "plan", "segment_index": "segment_index",
}


def _check_segment_inputs(plan, segment_index: int, start_frame: int, end_frame: int, previous) -> None:
    """A plan sets the frame range itself; a segment index without a plan would render the whole video."""
    from ..hallo_pipeline.errors import InputError

    if plan is None:
        if segment_index:
            raise InputError(f"{NODE_ID} input 'segment_index': {segment_index} picks a segment of a plan, and no "
                             "plan is connected; connect Hallo Segment Plan to 'plan', or set segment_index to 0")
        return
    clash = [name for name, value in (("start_frame", start_frame), ("end_frame", end_frame)) if value]
    if previous is not None:
        clash.append("previous")
    if clash:
        raise InputError(f"{NODE_ID} input '{clash[0]}': with a plan connected, the plan sets each segment's frames; "
                         "set start_frame and end_frame to 0 and leave 'previous' unconnected")


def _mode(mode: str, audio, pipeline) -> str:
    """The audio's mode for auto; another one only where it cannot change the features (short audio)."""
    from ..hallo_pipeline.errors import InputError

    if mode == "auto":
        return audio.mode
    chunk = pipeline.audio_chunk_seconds(mode) or pipeline.audio_chunk_seconds(audio.mode)
    if mode != audio.mode and chunk is not None and audio.seconds > chunk:
        raise InputError(
            f"mode {mode!r} differs from the mode Hallo Audio Embed used ({audio.mode!r}), and this "
            f"{audio.seconds:.0f}-second audio is embedded differently in each; set both nodes to the same mode "
            "(or leave the sampler on auto)"
        )
    return mode
