"""The Hallo family (Hallo and Hallo2 weights) as the seam (`hallo_pipeline.families`) sees it.

Cheap to import: the networks, the checkpoint reader and the pipeline are imported when a method needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..download import RepoFile
    from .model_files import ModelFiles
    from .pipeline import HalloPipeline
    from .sampling.clip_loop import SamplerSettings


class HalloFamily:
    """SD-1.5 UNet + ReferenceNet + motion and audio modules, 512x512, 16-frame clips (`SPEC.md`)."""

    name = "Hallo"
    # In auto's order: Hallo when the folder has it, else Hallo2 (said in `ModelFiles.note`).
    variants = {"hallo": "hallo/net.pth", "hallo2": "hallo2/net.pth"}
    # The sampling modes of `HalloPipeline` (`settings`, `encode_audio`) besides "auto", which follows the weights.
    modes = ("hallo", "hallo2")
    flags = {"hallo2": "long-video mode with hallo2/net.pth (60 s audio chunks, motion-frame drop)"}
    text_prompt = False
    half_precision = "fp16"
    default_prompt = ""

    def official_files(self, variant: str, vocal_separator: bool = True) -> list[RepoFile]:
        from .download import files

        return files(hallo=variant != "hallo2", hallo2=variant == "hallo2", vocal_separator=vocal_separator)

    def locate(self, root: Path, variant: str = "auto") -> ModelFiles:
        from .model_files import locate

        return locate(root, variant)

    def required_parts(self, separate_vocals: bool = False) -> list[str]:
        from .pipeline import required_parts

        return required_parts(separate_vocals)

    def check_inputs(self, files: ModelFiles | None, image, audio, output, **options):
        from .pipeline import check_animate_inputs

        return check_animate_inputs(files, image, audio, output, **options)

    def settings(self, files: ModelFiles, mode: str = "auto", **settings: Any) -> SamplerSettings:
        """`SamplerSettings` for these weights, the clip length checked against the file's sizes (no loading)."""
        from .checkpoint import read_net_config
        from .pipeline import sampler_settings
        from .sampling.clip_loop import check_clip_length

        checked = sampler_settings(files.variant, mode, **settings)
        check_clip_length(checked.clip_length, read_net_config(files.net).motion)
        return checked

    def load(self, files: ModelFiles, fp8: bool | None = None, offload_blocks: int | None = None,
             tiled_decode: bool | None = None, **options: Any) -> HalloPipeline:
        """`fp8`: the UNets' weights stored in float8 (`HalloPipeline.load`). `offload_blocks` and `tiled_decode`
        are Hallo3's (its 18 GB DiT and video VAE); Hallo has neither, so asking for them is refused before
        anything loads rather than ignored."""
        from ..errors import InputError
        from .pipeline import HalloPipeline

        asked = [name for name, value in (("offload_blocks", offload_blocks), ("tiled_decode", tiled_decode)) if value]
        if asked:
            raise InputError(
                f"{', '.join(asked)}: Hallo3 options, but the folder gives {files.describe()}, which has no streamed "
                "layers or tiled decode; leave them out (for less GPU memory with Hallo use low_vram and fp8)",
                asked[0],
            )
        if fp8 is not None and not isinstance(fp8, bool):
            raise InputError(f"fp8 must be true or false, got {fp8!r}", "fp8")
        return HalloPipeline.load(files, fp8=bool(fp8), **options)


FAMILY = HalloFamily()
