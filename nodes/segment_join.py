"""HalloSegmentJoin: every segment's IMAGE frames in plan order (e.g. from ComfyUI-Distributed's collector) ->
the joined video: IMAGE frames, the AUDIO cut to them, a VIDEO, the fps."""

from __future__ import annotations

from .api import CATEGORY, SEGMENT_PLAN, io
from .errors import blame
from .video_stitch import FPS_INPUT, STITCHED_OUTPUTS, stitched_outputs

NODE_ID = "HalloSegmentJoin"


class HalloSegmentJoin(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloSegmentJoin",
            display_name="Hallo Segment Join",
            category=f"{CATEGORY}/long video",
            description="Joins the segments of a Hallo Segment Plan, rendered on several GPUs or machines and "
            "collected one after another in plan order (ComfyUI-Distributed's Distributed Collector puts the master's "
            "first, then the workers' in order), crossfading each overlap; then cuts the audio to the frames.",
            inputs=[
                io.Image.Input("segment_images",
                               tooltip="Every segment's frames, segment 0 first (Hallo Video Stitch's images of each "
                               "segment, gathered by Distributed Collector or Image Batch)."),
                SEGMENT_PLAN.Input("plan", tooltip="The plan the segments were rendered with."),
                io.Audio.Input("audio", tooltip="The whole speech, e.g. the 'audio' output of Hallo Audio Embed."),
                FPS_INPUT,
            ],
            outputs=list(STITCHED_OUTPUTS),
        )

    @classmethod
    def execute(cls, segment_images, plan, audio: dict, fps: float) -> io.NodeOutput:
        from ..hallo_pipeline.errors import InputError
        from ..hallo_pipeline.independent import join_collected

        lengths = plan.render_lengths
        if segment_images.shape[0] != sum(lengths):
            fits = [n for n in range(1, len(lengths)) if sum(lengths[:n]) == segment_images.shape[0]]
            hint = (f" - that is what the first {fits[0]} segment(s) render: are only {fits[0]} of "
                    f"{len(lengths)} participants rendering" if fits else "")
            raise InputError(
                f"{NODE_ID} input 'segment_images': {segment_images.shape[0]} frames arrived; the plan's "
                f"{len(lengths)} segments render {lengths} frames ({sum(lengths)} in all){hint}. Each segment must be "
                "rendered once, in plan order: with ComfyUI-Distributed set the plan's segments to the number of "
                "participants (master + enabled workers) and take the sampler's segment_index from a Distributed "
                "Seed set to 0"
            )
        with blame(NODE_ID, "segment_images"):
            joined = join_collected(plan, segment_images.float().cpu())
        return io.NodeOutput(*stitched_outputs(joined, audio, 0, fps, NODE_ID))
