"""ComfyUI entry point of the Hallo node pack.

ComfyUI imports this folder as a package; everything heavy (torch models, mediapipe,
insightface) is imported lazily by the nodes when they run, never here.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
