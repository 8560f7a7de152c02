"""The thumbnails ComfyUI's Templates dialog shows for our workflows: `workflows/<name>.jpg` beside
`workflows/<name>.json` (both frontends, 1.27 with ComfyUI 0.3.64 and 1.49 with 0.33.0, ask a custom node pack's
template for `/api/workflow_templates/<pack>/<name>.jpg`, which the server serves from the pack's `workflows/`).

Each is a drawing of the workflow itself: its name over its graph (nodes where the workflow places them, links in
ComfyUI's colours per type), so it shows what the template holds and stays true when the graph changes. Run
`python -m tests.nodes.workflow_thumbnails` in the pack's folder after changing or adding a workflow; a test fails
while a thumbnail is missing or out of date.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tests.nodes.workflow_layout import TITLE_HEIGHT, title

REPO = Path(__file__).resolve().parents[2]
SIZE = 512  # square: the dialog's cards crop to a square
BANNER = 112
MARGIN = 18
BACKGROUND = (32, 32, 32)
# (title bar, body) per kind of node, and ComfyUI's link colours per type.
NODE_COLOURS = {"hallo": ((74, 62, 140), (52, 46, 92)), "input": ((46, 84, 120), (36, 56, 76)),
                "output": ((48, 110, 72), (36, 70, 50)), "other": ((64, 64, 64), (48, 48, 48))}
LINK_COLOURS = {"IMAGE": (100, 181, 246), "MASK": (129, 199, 132), "AUDIO": (234, 128, 252),
                "VIDEO": (255, 202, 40), "FLOAT": (170, 238, 136), "INT": (170, 238, 136)}
OTHER_LINK = (170, 170, 200)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _kind(node: dict) -> str:
    if node["type"].startswith("Hallo"):
        return "hallo"
    if node["type"].startswith("Load"):
        return "input"
    return "output" if not node.get("outputs") or node["type"].startswith(("Save", "Preview")) else "other"


def _label(node: dict) -> str:
    """The node's name without the pack prefix and any parenthesis: what fits in a box a few dozen pixels wide."""
    return re.sub(r"\s*\(.*\)$", "", title(node)).removeprefix("Hallo ").strip()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float, height: float):
    """The largest label font (11 to 8 px) whose wrapped lines fit the box; else the smallest, as many lines as
    fit (at least one)."""
    for size in (11, 10, 9, 8):
        font = _font(size)
        lines = _wrap(draw, text, font, width)
        if len(lines) * (size + 1) <= height and all(draw.textlength(x, font=font) <= width for x in lines):
            return font, lines
    return font, lines[: max(int(height // (size + 1)), 1)]


def _curve(p0, p3, steps: int = 24) -> list[tuple[float, float]]:
    """LiteGraph's spline link: a cubic Bezier leaving and entering horizontally."""
    pull = max(abs(p3[0] - p0[0]) * 0.5, 20)
    p1, p2 = (p0[0] + pull, p0[1]), (p3[0] - pull, p3[1])
    points = []
    for i in range(steps + 1):
        t = i / steps
        a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
        points.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return points


def render(workflow: dict, name: str) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    heading = name.replace("_", " ").capitalize()
    draw.rectangle([0, 0, SIZE, BANNER], fill=(22, 22, 22))
    lines = _wrap(draw, heading, _font(30), SIZE - 2 * MARGIN)
    for i, line in enumerate(lines[:2]):
        draw.text((MARGIN, 14 + 34 * i), line, font=_font(30), fill=(240, 240, 240))
    draw.text((MARGIN, BANNER - 26), f"Hallo node pack · {len(workflow['nodes'])} nodes", font=_font(16),
              fill=(160, 160, 170))

    nodes = {n["id"]: n for n in workflow["nodes"]}
    boxes = {i: (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for i, n in nodes.items()}
    x0, y0 = min(b[0] for b in boxes.values()), min(b[1] for b in boxes.values())
    x1, y1 = max(b[2] for b in boxes.values()), max(b[3] for b in boxes.values())
    area = (SIZE - 2 * MARGIN, SIZE - BANNER - 2 * MARGIN)
    scale = min(area[0] / (x1 - x0), area[1] / (y1 - y0))
    left = MARGIN + (area[0] - (x1 - x0) * scale) / 2
    top = BANNER + MARGIN + (area[1] - (y1 - y0) * scale) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) * scale, top + (y - y0) * scale

    def slot(node: dict, index: int, side: int) -> tuple[float, float]:
        x = node["pos"][0] + (node["size"][0] if side else 0)
        return at(x, node["pos"][1] + 15 + 20 * index)

    for _, origin, out_slot, target, in_slot, link_type in workflow["links"]:
        points = _curve(slot(nodes[origin], out_slot, 1), slot(nodes[target], in_slot, 0))
        draw.line(points, fill=LINK_COLOURS.get(link_type, OTHER_LINK), width=2)

    for i, node in nodes.items():
        bar, body = NODE_COLOURS[_kind(node)]
        bx0, by0 = at(*boxes[i][:2])
        bx1, by1 = at(*boxes[i][2:])
        bar_bottom = by0 + max(TITLE_HEIGHT * scale, 4)
        draw.rounded_rectangle([bx0, by0, bx1, by1], radius=3, fill=body, outline=(90, 90, 90))
        draw.rounded_rectangle([bx0, by0, bx1, bar_bottom], radius=3, fill=bar)
        font, lines = _fit(draw, _label(node), bx1 - bx0 - 4, by1 - bar_bottom - 2)
        for k, line in enumerate(lines):
            draw.text((bx0 + 3, bar_bottom + 1 + (font.size + 1) * k), line, font=font, fill=(225, 225, 230))
    return image


def thumbnail_path(workflow_path: Path) -> Path:
    return workflow_path.with_suffix(".jpg")


def write(workflow_path: Path) -> Path:
    out = thumbnail_path(workflow_path)
    render(json.loads(workflow_path.read_text()), workflow_path.stem).save(out, "JPEG", quality=92, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or sorted(
        (REPO / "workflows").glob("*.json"))
    for path in paths:
        out = write(path)
        print(f"wrote {out} ({out.stat().st_size // 1000} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
