"""ComfyUI glue: nine thin nodes over `hallo_pipeline`.

On a ComfyUI with the V3 API the nodes are served through `comfy_entrypoint()` and
`NODE_CLASS_MAPPINGS` is None: both ComfyUI 0.3.64 and 0.33.0 register a module's
NODE_CLASS_MAPPINGS instead of calling its entry point unless it is None. On an older ComfyUI
the same classes, built on `v1_io`, are the NODE_CLASS_MAPPINGS.
"""

from __future__ import annotations

from . import comfy_glue
from .api import HAS_V3, ComfyExtension
from .audio_embed import HalloAudioEmbed
from .face_mask import HalloFaceMask
from .model_loader import HalloModelLoader
from .paste_back import HalloPasteBack
from .reference_encode import HalloReferenceEncode
from .sampler import HalloSampler
from .segment_join import HalloSegmentJoin
from .segment_plan import HalloSegmentPlan
from .video_stitch import HalloVideoStitch

NODES = [
    HalloModelLoader, HalloFaceMask, HalloAudioEmbed, HalloReferenceEncode, HalloSampler, HalloVideoStitch,
    HalloPasteBack, HalloSegmentPlan, HalloSegmentJoin,
]

comfy_glue.register_model_folder()

if HAS_V3:

    class HalloExtension(ComfyExtension):
        async def get_node_list(self) -> list:
            return list(NODES)

    async def comfy_entrypoint() -> HalloExtension:
        return HalloExtension()

    NODE_CLASS_MAPPINGS = None
    NODE_DISPLAY_NAME_MAPPINGS = None
else:
    comfy_entrypoint = None
    NODE_CLASS_MAPPINGS = {cls.define_schema().node_id: cls for cls in NODES}
    NODE_DISPLAY_NAME_MAPPINGS = {cls.define_schema().node_id: cls.define_schema().display_name for cls in NODES}
