"""ComfyUI's node API (V3 `io` when this ComfyUI has it, else our V1 stand-in) and our socket types."""

from __future__ import annotations

try:
    from comfy_api.latest import ComfyExtension, io

    HAS_V3 = True
except ImportError:  # a ComfyUI from before the V3 API: the same nodes, served through V1
    from . import v1_io as io

    ComfyExtension = None
    HAS_V3 = False

# Objects that only travel between our own nodes.
# The pipeline a family loads (hallo_pipeline.families.load_pipeline; for Hallo: hallo.pipeline.HalloPipeline, whose
# placement holds ComfyUI's patchers).
PIPELINE = io.Custom("HALLO_PIPELINE")
FACE = io.Custom("HALLO_FACE")  # hallo_pipeline.hallo.face_analysis.FaceAnalysis
REFERENCE = io.Custom("HALLO_REFERENCE")  # hallo_pipeline.hallo.pipeline.PreparedReference, with its ReferenceNet rows
AUDIO_FEATURES = io.Custom("HALLO_AUDIO")  # nodes.audio_embed.EmbeddedAudio
FRAMES = io.Custom("HALLO_FRAMES")  # hallo_pipeline.hallo.pipeline.FrameSegment
SEGMENT_PLAN = io.Custom("HALLO_SEGMENT_PLAN")  # hallo_pipeline.independent.SegmentPlan

CATEGORY = "Hallo"
MODE_TOOLTIP = (
    "auto: follow the loaded weights (Hallo2 weights -> Hallo2 long mode). hallo: the original clip loop. "
    "hallo2: Hallo2's long-video mode (audio embedded in 60 s chunks, motion frames partly dropped outside the face)."
)
