"""The model-family seam: the one place the command line, the nodes and scripts learn which families exist.

A family (Hallo + Hallo2, Hallo3, ...) lives in its own package and owns its networks, checkpoint layout,
sampler and working geometry; what all of them share (audio features, face finding, framing, video
writing, devices, safe loading, errors, the user settings in `config.py`) lives once, beside this module.
Here a family is one object with the small `ModelFamily` interface, listed in `FAMILIES`:

    files = locate("models/hallo", "auto")   # which family and variant the folder holds (cheap, no weights read)
    family = family_of(files.variant)
    family.check_inputs(files, image, audio, output, ...)   # every check that needs no model
    pipeline = family.load(files, device=..., dtype=...)

Adding a family: a package with a `ModelFamily` and a `ModelFolder` subclass, and one line in `FAMILIES`.
Importing this module is cheap: each family imports its networks when a method needs them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from .errors import CheckpointError, InputError
from .hallo.family import FAMILY as HALLO
from .hallo3.family import FAMILY as HALLO3
from .model_folder import ModelFolder

if TYPE_CHECKING:
    from .download import RepoFile

AUTO = "auto"


class ModelFamily(Protocol):
    name: str  # for messages, e.g. "Hallo"
    # Variant -> where its weights lie in a model folder (for help texts); in the order "auto" tries them.
    variants: Mapping[str, str]
    # The sampling modes its pipelines take besides "auto" (which follows the weights), e.g. a long-video loop.
    modes: tuple[str, ...]
    # Command-line shorthands: `--<variant>` -> its help (e.g. `--hallo2` for `--variant hallo2`).
    flags: Mapping[str, str]
    # Whether its runs take a text prompt: `check_inputs` and the pipeline's `animate` then take `prompt=`.
    text_prompt: bool
    # The prompt a run without one uses ("" where text_prompt is False).
    default_prompt: str
    # The 16-bit precision its weights were trained and released in ("fp16" or "bf16"): what "auto" picks on a
    # GPU that has it.
    half_precision: str

    def locate(self, root: Path, variant: str = AUTO) -> ModelFolder:
        """The family's weights of `variant` ("auto": its first variant present) in an existing folder, or a
        `CheckpointError` that lists where it looked and how to get them."""

    def required_parts(self, separate_vocals: bool = False) -> list[str]:
        """The parts of a model folder (`ModelFolder.require`) a whole generation reads."""

    def check_inputs(self, files: ModelFolder | None, image, audio, output, **options: Any) -> Any:
        """Every check of an `animate` run that needs no model (the user's files, the output, the options, the
        folder's parts), each problem an `InputError` naming its input; returns the output plan."""

    def settings(self, files: ModelFolder, mode: str = AUTO, **settings: Any) -> Any:
        """The run's checked settings for these weights, read from the files without loading them."""

    def load(self, files: ModelFolder, **options: Any) -> Any:
        """The family's pipeline for these files; options: device, dtype, low_vram, placement, attention, compile."""

    def official_files(self, variant: str, vocal_separator: bool = True) -> list[RepoFile]:
        """The files of the official repos that runs with `variant`'s weights read, for downloads and the model
        list."""


# The registry, in the order "auto" tries the families. One line per family.
FAMILIES: list[ModelFamily] = [
    HALLO,
    HALLO3,
]


def variant_options() -> list[str]:
    """The `variant` choices of the command line and the loader node: auto, then every family's variants."""
    return [AUTO, *(v for family in FAMILIES for v in family.variants)]


def mode_options() -> list[str]:
    """The sampling `mode` choices of the nodes: auto, then every family's modes."""
    return [AUTO, *dict.fromkeys(m for family in FAMILIES for m in family.modes)]


def default_prompts() -> dict[str, str]:
    """Family name -> the prompt its runs use when given none, for the families steered by text."""
    return {family.name: family.default_prompt for family in FAMILIES if family.text_prompt}


def variant_flags() -> dict[str, str]:
    """The command line's `--<variant>` shorthands for `--variant <variant>` -> their help."""
    return {v: what for family in FAMILIES for v, what in family.flags.items()}


def variants_help() -> str:
    """One line for tooltips and --help: each variant and its weights file, and what auto does."""
    each = "; ".join(f"{v}: {path}" for family in FAMILIES for v, path in family.variants.items())
    return f"{each}. auto: the first of these the folder holds, in this order"


def family_of(variant: str) -> ModelFamily:
    """The family a variant belongs to, or an `InputError` that names the choices."""
    for family in FAMILIES:
        if variant in family.variants:
            return family
    choices = [v for v in variant_options() if v != AUTO]
    raise InputError(
        f"variant {variant!r} is unknown; use {AUTO}, {', '.join(choices[:-1])} or {choices[-1]}", "variant"
    )


def locate(model_dir: str | Path, variant: str = AUTO) -> ModelFolder:
    """The weights a model folder holds for `variant`; "auto" takes the first family that has any, and says so in
    the result's `note` when that is not the first family (never switch families silently)."""
    root = Path(model_dir).expanduser()
    tried = list(FAMILIES) if variant == AUTO else [family_of(variant)]
    if not root.is_dir():
        return tried[0].locate(root, variant)  # its error says the folder does not exist and where to get one
    errors: list[CheckpointError] = []
    for family in tried:
        try:
            found = family.locate(root, variant)
        except CheckpointError as exc:
            errors.append(exc)
            continue
        if errors:
            skipped = " or ".join(f.name for f in tried[: len(errors)])
            found = dataclasses.replace(found, note=f"no {skipped} weights in the folder, so the {family.name} "
                                                    "weights are used")
        return found
    first, *others = errors
    raise CheckpointError(
        "; ".join([str(first), *(f"nor {f.name} weights: {exc}" for f, exc in zip(tried[1:], others))])
    ) from None


def holds_weights(folder: Path) -> bool:
    """Whether any family finds weights in `folder` (the loader node lists such sub-folders)."""
    for family in FAMILIES:
        try:
            family.locate(folder)
        except CheckpointError:
            continue
        return True
    return False


def official_files(model_dir: str | Path, variant: str = AUTO, vocal_separator: bool = True) -> list[RepoFile]:
    """What a download into `model_dir` for `variant` fetches; "auto": for the weights the folder holds, else for
    the first family's first variant."""
    if variant == AUTO:
        try:
            variant = locate(model_dir).variant
        except CheckpointError:
            variant = next(iter(FAMILIES[0].variants))
    return family_of(variant).official_files(variant, vocal_separator)


def load_pipeline(model_dir: str | Path | ModelFolder, variant: str = AUTO, **options: Any) -> Any:
    """The pipeline of the family whose weights the folder holds; options as `ModelFamily.load`."""
    files = model_dir if isinstance(model_dir, ModelFolder) else locate(model_dir, variant)
    return family_of(files.variant).load(files, **options)
