"""Import the pack the way ComfyUI does, against the stand-in ComfyUI modules in `standin/`.

ComfyUI loads a custom-node folder with `spec_from_file_location(<folder path>, <folder>/__init__.py)`
under a module name derived from the path, so the pack's relative imports work and nothing in it
is importable by a plain name. `ComfyEnv` does the same and removes everything again afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "standin"
COMFY_MODULES = ("folder_paths", "comfy", "comfy_api", "latent_preview")


def _purge(prefixes) -> dict[str, ModuleType]:
    """Remove these modules (and their submodules) from sys.modules; returns what was removed."""
    names = [n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in prefixes)]
    return {name: sys.modules.pop(name) for name in names}


def load_pack(folder: Path = REPO) -> ModuleType:
    """What ComfyUI's `load_custom_node` does for a folder."""
    name = str(folder).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class ComfyEnv:
    pack: ModuleType
    models_dir: Path

    @property
    def name(self) -> str:
        return self.pack.__name__

    def module(self, dotted: str) -> ModuleType:
        """A module of the pack, e.g. "nodes.sampler" or "hallo_pipeline.hallo.pipeline" (the pack's own copy)."""
        return importlib.import_module(f"{self.name}.{dotted}")

    @property
    def mm(self) -> ModuleType:
        return sys.modules["comfy.model_management"]

    @property
    def folder_paths(self) -> ModuleType:
        return sys.modules["folder_paths"]

    def nodes(self) -> dict[str, type]:
        """node id -> class, the way this ComfyUI would register them."""
        if self.pack.NODE_CLASS_MAPPINGS is not None:
            return dict(self.pack.NODE_CLASS_MAPPINGS)
        import asyncio

        extension = asyncio.run(self.pack.comfy_entrypoint())
        return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}


@contextlib.contextmanager
def comfy_env(models_dir: Path, v3: bool = True, extra_hallo_paths=()) -> Iterator[ComfyEnv]:
    """The pack imported into a stand-in ComfyUI whose models folder is `models_dir`.

    v3=False plays a ComfyUI from before the V3 API (no `comfy_api.latest`).
    extra_hallo_paths play `hallo:` entries of extra_model_paths.yaml (registered before packs load).
    """
    prefixes = (str(REPO).replace(".", "_x_"), *COMFY_MODULES)
    outer = _purge(prefixes)  # an enclosing environment gets its modules back at the end
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.syspath_prepend(str(STANDIN))
            if not v3:
                mp.setitem(sys.modules, "comfy_api", None)  # `import comfy_api...` raises ImportError
            folder_paths = importlib.import_module("folder_paths")
            mp.setattr(folder_paths, "models_dir", str(models_dir))
            for path in extra_hallo_paths:
                folder_paths.add_model_folder_path("hallo", str(path))
            try:
                yield ComfyEnv(load_pack(), models_dir)
            finally:
                _purge(prefixes)
    finally:
        sys.modules.update(outer)
