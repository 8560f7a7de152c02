"""ComfyUI glue: thin nodes over `hallo_pipeline`.

The six nodes (HalloModelLoader, HalloFaceMask, HalloAudioEmbed, HalloReferenceEncode,
HalloSampler, HalloVideoStitch) are not wired yet; until they are, the pack registers none.
"""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
