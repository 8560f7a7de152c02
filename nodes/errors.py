"""Say which node input an error is about: the library's messages say what is wrong and what to do."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Mapping

from ..hallo_pipeline.errors import Cancelled, CheckpointError, HalloError

PACK_DIR = Path(__file__).resolve().parents[1]


def _with_input(exc: HalloError, node: str, input_name: str | None) -> HalloError:
    where = f"{node} input '{input_name}'" if input_name else node
    message = f"{where}: {exc}"
    if "python -m hallo_pipeline" in message:  # the library's command only imports from the pack's folder
        message += f" (run it in a terminal, in the folder {PACK_DIR}, with ComfyUI's Python)"
    error = type(exc)(message)
    if hasattr(exc, "input"):
        error.input = input_name
    return error


@contextlib.contextmanager
def blame(
    node: str, input_name: str | None, models_input: str | None = None, inputs: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Re-raise our errors with the node and input they concern.

    A missing or damaged model file concerns `models_input` (the loader's model folder, or the
    `pipeline` input it came through); a missing Python package concerns no input. `inputs` maps
    the library's argument names (an `InputError`'s `input`) to this node's input names, for
    blocks where several inputs can be at fault; other errors concern `input_name`.
    """
    try:
        yield
    except Cancelled:
        raise
    except CheckpointError as exc:
        raise _with_input(exc, node, models_input or input_name) from exc
    except ImportError as exc:  # our MissingDependencyError: the message names the pip command
        if not isinstance(exc, HalloError):
            raise
        raise _with_input(exc, node, None) from exc
    except HalloError as exc:
        named = getattr(exc, "input", None)
        raise _with_input(exc, node, (inputs or {}).get(named, input_name)) from exc
