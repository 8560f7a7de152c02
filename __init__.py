"""ComfyUI entry point of the Hallo node pack.

ComfyUI imports this folder as a package. With the V3 API (ComfyUI 0.3.64 and later) it calls
`comfy_entrypoint()`; `NODE_CLASS_MAPPINGS` is then None, because ComfyUI prefers a module's
NODE_CLASS_MAPPINGS over its entry point whenever it is set. On an older ComfyUI the same six
nodes come as NODE_CLASS_MAPPINGS. Everything heavy (torch models, mediapipe, insightface) is
imported lazily by the nodes when they run, never here.
"""

WEB_DIRECTORY = "./web"

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_entrypoint
else:
    # Imported as a lone file, not as ComfyUI's package: pytest does this when the checkout's
    # folder name is not a Python identifier (e.g. `hallo-talking-head`). Nothing to register.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_entrypoint = {}, {}, None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "comfy_entrypoint"]
