"""Import heavy or optional libraries only when a step needs them, with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, pip_name: str, purpose: str) -> ModuleType:
    """Import `module`, or explain which `pip install` brings it and what it is needed for."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {pip_name!r}, which is not installed "
            f"({exc}); install it with: pip install {pip_name}"
        ) from exc


def first_importable(*modules: str) -> ModuleType:
    """The first of `modules` that imports; when none does, an ImportError that says why for each."""
    reasons = []
    for module in modules:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            reasons.append(f"{module}: {exc}")
    raise ImportError("; ".join(reasons))
