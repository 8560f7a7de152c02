"""The official files in the JSON format ComfyUI-Manager's model installer reads (its `model-list.json`: one
entry per file, saved under ComfyUI's `models/` at `save_path`), made from the families' download lists.

`python -m hallo_pipeline model-list web/model-list.json` writes the copy the README points to; a test keeps
that copy equal to what this module makes. Every file goes into `models/hallo/` in its repo's layout, the
folder the loader node lists; a file that several repos hold at the same path is listed once.
"""

from __future__ import annotations

import json
import posixpath

from .download import RepoFile
from .families import FAMILIES

# ComfyUI/models/hallo: the folder kind the loader node registers (nodes/comfy_glue.MODEL_FOLDER_KIND).
MODELS_SUBFOLDER = "hallo"


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g}{unit}"
    return f"{size}B"


def entry(base: str, f: RepoFile) -> dict[str, str]:
    folder, filename = posixpath.split(f.path)
    return {
        "name": f"{base}: {f.path}",
        "type": "Hallo",
        "base": base,
        "save_path": posixpath.join(MODELS_SUBFOLDER, folder),
        "description": f"{f.about}. For the Hallo node pack (HalloModelLoader): the folder models/{MODELS_SUBFOLDER} "
        f"in the layout of {f.repo}.",
        "reference": f"https://huggingface.co/{f.repo}",
        "filename": filename,
        "url": f.url,
        "size": _size(f.size),
    }


def model_list() -> dict[str, list[dict[str, str]]]:
    entries: dict[str, dict[str, str]] = {}
    for family in FAMILIES:
        for variant in family.variants:
            for f in family.official_files(variant):
                entries.setdefault(f.path, entry(variant.capitalize(), f))  # hallo2 -> Hallo2
    return {"models": list(entries.values())}


def render() -> str:
    return json.dumps(model_list(), indent=2, ensure_ascii=False) + "\n"
