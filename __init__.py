"""ComfyUI entry point of the Hallo node pack.

ComfyUI imports this folder as a package; everything heavy (torch models, mediapipe,
insightface) is imported lazily by the nodes when they run, never here.
"""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # Imported as a lone file, not as ComfyUI's package: pytest does this when the checkout's
    # folder name is not a Python identifier (e.g. `hallo-talking-head`). Nothing to register.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
