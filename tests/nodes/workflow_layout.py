"""Where the ComfyUI frontend draws each node of a UI-format workflow, as rectangles (x0, y0, x1, y1) in canvas
units, including what grows after a run.

LiteGraph's rules: `pos` is the top-left corner of the body, the title bar (30 units) sits above it, `size` is the
body; a title wider than the node runs past its right edge (about 8 units a character at the 14 px title font,
plus the collapse dot and padding). After a run, a node that previews a video (Save Video) grows to show the
video at the node's full width under its widgets; image previews are fitted into the body and take at least
220 units under the widgets. We reserve a 3:4 portrait for videos (Hallo's frames are square, Hallo3's
landscape; a photo pasted back keeps its own aspect, portraits being the tall case).
"""

from __future__ import annotations

import re

TITLE_HEIGHT = 30
TITLE_CHAR = 8
TITLE_PADDING = 40
WIDGET_HEIGHT = 24
VIDEO_ASPECT = 4 / 3  # height / width reserved for a video preview
IMAGE_PREVIEW_HEIGHT = 220

# Node type -> (widgets above the preview, "video" or "image"): core and VideoHelperSuite output nodes.
PREVIEWS = {
    "SaveVideo": (3, "video"), "VHS_VideoCombine": (8, "video"), "PreviewImage": (0, "image"),
    "SaveImage": (1, "image"), "MaskPreview": (0, "image"),
}
# Display names that are not the node type split at capitals.
DISPLAY_NAMES = {"ImageScale": "Upscale Image", "VHS_VideoCombine": "Video Combine", "VHS_LoadAudioUpload":
                 "Load Audio (Upload)"}

Rect = tuple[float, float, float, float]


def title(node: dict) -> str:
    if node.get("title"):
        return node["title"]
    return DISPLAY_NAMES.get(node["type"], re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", node["type"]))


def body_height_after_a_run(node: dict) -> float:
    height = node["size"][1]
    if node["type"] in PREVIEWS:
        widgets, kind = PREVIEWS[node["type"]]
        preview = node["size"][0] * VIDEO_ASPECT if kind == "video" else IMAGE_PREVIEW_HEIGHT
        height = max(height, widgets * WIDGET_HEIGHT + 10 + preview)
    return height


def rect(node: dict) -> Rect:
    """The node's extent on the canvas after a run: title bar, body, a title running past the body."""
    x, y = node["pos"]
    width = max(node["size"][0], TITLE_PADDING + TITLE_CHAR * len(title(node)))
    return (x, y - TITLE_HEIGHT, x + width, y + body_height_after_a_run(node))


def overlaps(workflow: dict, gap: float = 10) -> list[str]:
    """Every pair of nodes closer than `gap` (collapsed nodes are drawn as their title only and ignored)."""
    nodes = [n for n in workflow["nodes"] if not n.get("flags", {}).get("collapsed")]
    rects = {n["id"]: rect(n) for n in nodes}
    found = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            ra, rb = rects[a["id"]], rects[b["id"]]
            if ra[0] < rb[2] + gap and rb[0] < ra[2] + gap and ra[1] < rb[3] + gap and rb[1] < ra[3] + gap:
                found.append(f"{a['id']} {title(a)!r} {ra} and {b['id']} {title(b)!r} {rb}")
    return found
