"""HalloSegmentPlan: HALLO_AUDIO -> the independent-segment plan that several ComfyUIs render a part of each."""

from __future__ import annotations

from .api import AUDIO_FEATURES, CATEGORY, SEGMENT_PLAN, io
from .errors import blame

NODE_ID = "HalloSegmentPlan"
MAX_SEGMENTS = 64


class HalloSegmentPlan(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloSegmentPlan",
            display_name="Hallo Segment Plan",
            category=f"{CATEGORY}/long video",
            description="Cuts long audio into independent segments that several GPUs or machines render at once "
            "(e.g. with ComfyUI-Distributed): each cut sits in the quietest nearby pause on a whole clip, each "
            "segment starts from the portrait, and neighbours overlap so Hallo Segment Join can crossfade them. "
            "Every participant computes the same plan from the same audio.",
            inputs=[
                AUDIO_FEATURES.Input("hallo_audio", tooltip="From Hallo Audio Embed (its clip length is used)."),
                io.Int.Input(
                    "segments", default=2, min=1, max=MAX_SEGMENTS,
                    tooltip="How many segments: with ComfyUI-Distributed, the number of participants (the master "
                    "plus the enabled workers), each rendering one. 1 = one independent segment (the exact video).",
                ),
                io.Int.Input(
                    "overlap_clips", default=1, min=0, max=8,
                    tooltip="Clips both neighbours render at each cut, crossfaded by Hallo Segment Join (1 = 0.64 s "
                    "with 16-frame clips; hides the new segment's first clip, which starts from the portrait's "
                    "pose). 0 = a hard cut. Each clip of overlap costs one extra clip per cut.",
                ),
            ],
            outputs=[SEGMENT_PLAN.Output("plan", display_name="plan",
                                         tooltip="For Hallo Sampler (with its segment_index) and Hallo Segment Join.")],
        )

    @classmethod
    def execute(cls, hallo_audio, segments: int, overlap_clips: int) -> io.NodeOutput:
        from ..hallo_pipeline.errors import InputError
        from ..hallo_pipeline.independent import plan_segments

        loudness = hallo_audio.loudness
        if loudness is None or len(loudness) != hallo_audio.frames:
            raise InputError(f"{NODE_ID} input 'hallo_audio': it carries no loudness for its {hallo_audio.frames} "
                             "frames; connect Hallo Audio Embed's hallo_audio output directly")
        with blame(NODE_ID, "hallo_audio", inputs={"segments": "segments", "overlap": "overlap_clips"}):
            plan = plan_segments(loudness, segments, clip_length=hallo_audio.clip_length,
                                 overlap=overlap_clips * hallo_audio.clip_length)
        return io.NodeOutput(plan)
