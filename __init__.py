"""ComfyUI entry point of the Hallo node pack.

ComfyUI imports this folder as a package. With the V3 API (ComfyUI 0.3.64 and later) it calls
`comfy_entrypoint()`; `NODE_CLASS_MAPPINGS` is then None, because ComfyUI prefers a module's
NODE_CLASS_MAPPINGS over its entry point whenever it is set. On an older ComfyUI the same seven
nodes come as NODE_CLASS_MAPPINGS. Everything heavy (torch models, mediapipe, insightface) is
imported lazily by the nodes when they run, never here.
"""

import sys

WEB_DIRECTORY = "./web"

# ComfyUI has imported folder_paths long before it loads custom nodes. Anything else that imports
# this file registers nothing: pytest does, as a lone file when the checkout's folder name is not
# a Python identifier (e.g. `hallo-talking-head`), as a package when it is.
if __package__ and "folder_paths" in sys.modules:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_entrypoint
else:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_entrypoint = {}, {}, None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "comfy_entrypoint"]
