"""The Hallo3 family as the seam (`hallo_pipeline.families`) sees it: its folder layout (`SPEC-HALLO3.md` §1),
the checks and settings of a run, and its pipeline (`animate.Hallo3Pipeline`).

Hallo3 honours fewer of the shared options than Hallo: it works at its weights' own size, in segments whose
length the weights fix, with one audio strength. Hallo's options for these (image size, clip length, region
weights) are refused when set to anything but their defaults, so a run never silently differs from what was
asked. Framing is shared (`face.py`): "crop" (the default) animates a rectangle of the working aspect around the
face and pastes it back into the photo; "stretch" is the release's geometry (SPEC §9.3: the photo scaled and
centre-cropped to 480 x 720, a square one padded and cropped back), whose frames are the video as they are, so
the paste-back options are refused with it.

Cheap to import: the checkpoint reader, the networks and the pipeline are imported when a method needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import (
    CLIP_LENGTH,
    CROP_SCALE,
    FACE_EXPAND_RATIO,
    FEATHER,
    IMAGE_SIZE,
    MAX_SIDE,
    SEED,
    RegionWeights,
)
from ..errors import InputError
from ..model_folder import ModelFolder
from .config import GUIDANCE, STEPS

if TYPE_CHECKING:
    from ..download import RepoFile
    from ..video import OutputPlan
    from .animate import Hallo3Pipeline

SOURCE_REPO = "fudan-generative-ai/hallo3"
# A plain description of a talking head, in the style of the release's example prompts; the prompt steers the
# scene and motion (SPEC §8), so a user with a particular video in mind should write their own.
DEFAULT_PROMPT = "A person is talking to the camera, with natural head movements and facial expressions."


@dataclass(frozen=True)
class Hallo3Files(ModelFolder):
    root: Path
    weights: Path  # hallo3/<iteration>/mp_rank_00_model_states.safetensors, or the release's .pt
    variant: str = "hallo3"
    note: str = ""

    def describe(self) -> str:
        return f"Hallo3 weights {self.weights}" + (f" ({self.note})" if self.note else "")

    def fetch_hint(self) -> str:
        return (f"Fetch them with: python -m hallo_pipeline download {self.root} --hallo3 (the files of the Hugging "
                f"Face repo {SOURCE_REPO} that inference reads, in the repo's layout)")

    @property
    def vae(self) -> Path:
        from .vae import VAE_FILE

        return self.root / VAE_FILE

    @property
    def t5(self) -> Path:
        from .text import T5_DIR

        return self.root / T5_DIR

    def parts(self) -> dict[str, Path]:
        """The parts `require` knows: "vae", "t5", "wav2vec", "face_models", "vocal_separator"."""
        return {"vae": self.vae, "t5": self.t5 / "config.json", **super().parts()}


class Hallo3Family:
    """CogVideoX-5B DiT + identity reference bank + face/audio cross-attention, 480x720, 49-frame segments."""

    name = "Hallo3"
    variants = {"hallo3": "hallo3/latest + hallo3/<iteration>/mp_rank_00_model_states.pt (or .safetensors)"}
    modes: tuple[str, ...] = ()
    flags: dict[str, str] = {}
    text_prompt = True
    half_precision = "bf16"
    default_prompt = DEFAULT_PROMPT

    def official_files(self, variant: str = "hallo3", vocal_separator: bool = True) -> list[RepoFile]:
        from .download import files

        return files(vocal_separator)

    def locate(self, root: Path, variant: str = "auto") -> Hallo3Files:
        from .checkpoint import find_weights

        return Hallo3Files(root=Path(root), weights=find_weights(root))

    def required_parts(self, separate_vocals: bool = False) -> list[str]:
        return ["vae", "t5", "face_models", "wav2vec", *(["vocal_separator"] if separate_vocals else [])]

    def check_inputs(
        self,
        files: Hallo3Files | None,
        image,
        audio,
        output,
        *,
        prompt: str = DEFAULT_PROMPT,
        face_expand_ratio: float | None = None,
        separate_vocals: bool = False,
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
        paste_options: dict | None = None,
        **hallo_options: Any,
    ) -> OutputPlan:
        """Every check of an `animate` run that needs no model: the photo and the audio, the prompt, the framing
        and paste-back options (`paste_options`: feather, color_match, max_side), Hallo's own options (refused
        unless at their defaults), the output, the folder's parts."""
        from ..inputs import check_user_files
        from ..video import check_output_path

        inputs = check_user_files(image, audio)
        check_prompt(prompt)
        if face_expand_ratio is not None:
            FACE_EXPAND_RATIO.check(face_expand_ratio)
        check_framing_options(framing, crop_scale, paste_options)
        refuse_hallo_options(**hallo_options)
        plan = check_output_path(output, inputs)
        if files is not None:
            files.require(*self.required_parts(separate_vocals))
        return plan

    def settings(self, files: Hallo3Files | None = None, mode: str = "auto", **settings: Any) -> Hallo3Settings:
        """The run's checked `Hallo3Settings`: steps, guidance_scale (cfg) and seed; None takes the default.
        Hallo's clip_length and weights are refused unless at their defaults. Reads no files."""
        if mode != "auto":
            raise InputError(f"mode {mode!r} is Hallo's; Hallo3 has one sampling loop, so use mode 'auto'", "mode")
        own = {k: settings.pop(k) for k in ("steps", "guidance_scale", "seed") if settings.get(k) is not None}
        settings = {k: v for k, v in settings.items() if k not in ("steps", "guidance_scale", "seed")}
        refuse_hallo_options(**settings)
        return Hallo3Settings(**own)

    def load(
        self,
        files: Hallo3Files,
        device=None,
        dtype=None,
        low_vram: bool = False,
        attention: str = "auto",
        compile: bool = False,
        placement=None,
        fp8: bool | None = None,
        offload_blocks: int | None = None,
        tiled_decode: bool | None = None,
        **options: Any,
    ) -> Hallo3Pipeline:
        """The pipeline for these files on `device` (None: the best there is) in `dtype` (None or "auto": bf16 on
        a GPU, as the release runs, fp32 on the CPU).

        Memory (benchmarks/results/hallo3-full-estimate-bf16.md): on a GPU, T5, the reference DiT, the main DiT
        and the VAE always wait on the host and come to the GPU one at a time, for their own phase. `fp8`: the
        main DiT's layer matrices stored in float8 e4m3 (half their memory; a small drift, see
        benchmarks/results/hallo3-fp8-drift-cpu.md). `offload_blocks` N: N of its layers stay on the host and are
        copied in for their own forward (slower, less memory, same output). `tiled_decode`: the VAE decodes in
        spatial tiles (diffusers' tiling; ~3.5x less decoder memory, slightly different frames). `low_vram`: the
        16 GB mode, all three (half the layers on the host) unless `fp8` / `offload_blocks` / `tiled_decode` say
        otherwise. `placement` (`devices.Placement`'s interface; the nodes pass ComfyUI's model management):
        where each network waits and computes. Hallo's other speed-ups (attention kernels other than PyTorch's,
        compile) are refused before anything loads."""
        from .loading import read_model_config
        from .pipeline import MemoryOptions

        if options:
            raise InputError(f"unknown options {sorted(options)} for Hallo3", sorted(options)[0])
        if placement is not None and not all(hasattr(placement, a) for a in ("device", "offload", "home", "use")):
            raise InputError(f"placement {placement!r} is not a placement: it needs device, offload, home() and "
                             "use() (hallo_pipeline.devices.Placement)", "placement")
        if not isinstance(low_vram, bool):
            raise InputError(f"low_vram must be true or false, got {low_vram!r}", "low_vram")
        refused = []
        if attention not in ("auto", "sdpa"):
            refused.append(f"attention={attention!r} (Hallo3 runs PyTorch's scaled_dot_product_attention: use "
                           "auto or sdpa)")
        if compile:
            refused.append("compile (not wired for Hallo3's DiT yet)")
        if refused:
            raise InputError(f"Hallo3 cannot honour {'; '.join(refused)}; these apply to Hallo only",
                             refused[0].split(" ", 1)[0].split("=", 1)[0])
        layers = read_model_config(files.weights)[0].dit.num_layers
        memory = low_vram_memory(layers) if low_vram else MemoryOptions()
        memory = MemoryOptions(
            fp8=memory.fp8 if fp8 is None else fp8,
            offload_blocks=memory.offload_blocks if offload_blocks is None else offload_blocks,
            tiled_decode=memory.tiled_decode if tiled_decode is None else tiled_decode,
        ).check(layers)
        from .animate import Hallo3Pipeline

        return Hallo3Pipeline.load(files, device=device, dtype=dtype, placement=placement, fp8=memory.fp8,
                                   offload_blocks=memory.offload_blocks, tiled_decode=memory.tiled_decode)


def low_vram_memory(num_layers: int):
    """What `low_vram` means for Hallo3 (the estimate's `low-VRAM` mode): fp8 storage, half of the main DiT's
    layers streamed from the host (21 of the release's 42) and the VAE decode in tiles, so that no phase needs the
    ~16 GB of the release's untiled decode."""
    from .pipeline import MemoryOptions

    return MemoryOptions(fp8=True, offload_blocks=num_layers // 2, tiled_decode=True)


@dataclass(frozen=True)
class Hallo3Settings:
    """The one owner of a Hallo3 run's settings; every value is checked when it is made."""

    steps: int = STEPS.default
    guidance_scale: float = GUIDANCE.default
    seed: int = SEED.default

    def __post_init__(self) -> None:
        STEPS.check(self.steps)
        GUIDANCE.check(self.guidance_scale, "cfg")
        SEED.check(self.seed)


def check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(
            f"prompt must be a text that describes the video (Hallo3 is steered by it), got {prompt!r}; e.g. "
            f"{DEFAULT_PROMPT!r}", "prompt",
        )
    return prompt


PASTE_DEFAULTS: dict[str, Any] = {"max_side": MAX_SIDE.default, "feather": FEATHER.default, "color_match": True}


def check_framing_options(framing: str = "crop", crop_scale: float = CROP_SCALE.default,
                          paste_options: dict | None = None) -> None:
    """The framing options as Hallo checks them; with framing "stretch" the paste-back options (max_side, feather,
    color_match) must stay at their defaults: the video is then the model's own frames, nothing is pasted."""
    from ..framing import check_framing_mode, check_paste_options

    check_framing_mode(framing)
    CROP_SCALE.check(crop_scale)
    unknown = sorted(set(paste_options or {}) - set(PASTE_DEFAULTS))
    if unknown:
        raise InputError(f"unknown paste options {unknown}; use {sorted(PASTE_DEFAULTS)}", unknown[0])
    pasted = {**PASTE_DEFAULTS, **(paste_options or {})}
    check_paste_options(**pasted)
    changed = [f"{name}={value!r}" for name, value in pasted.items() if value != PASTE_DEFAULTS[name]]
    if framing == "stretch" and changed:
        raise InputError(
            f"{', '.join(changed)} with framing='stretch': the paste-back options shape the photo the frames are "
            "pasted into, and with framing='stretch' the video is the model's own frames (the release's geometry: "
            "the working size, 720 x 480 for the release, or its height squared for a square photo). Leave them at "
            "their defaults, or use framing='crop'", changed[0].split("=", 1)[0],
        )


# Hallo's options and the values that mean "not set"; Hallo3 has nothing that does what they do.
HALLO_ONLY: dict[str, tuple[Any, str]] = {
    "image_size": (IMAGE_SIZE.default, "Hallo3 works at its weights' own size (480 x 720 for the release)"),
    "clip_length": (CLIP_LENGTH.default, "Hallo3's segments are 49 frames, fixed by its weights"),
    "weights": (RegionWeights(), "Hallo3 has no per-region audio strengths"),
    "face_options": (None, "Hallo3 finds the face with its own defaults"),
}


def refuse_hallo_options(**options: Any) -> None:
    """An `InputError` naming every Hallo-only option set to anything but its default, and why; unknown names
    are refused too (a misspelt option must not be ignored)."""
    unknown = sorted(set(options) - set(HALLO_ONLY))
    if unknown:
        raise InputError(f"unknown options {unknown} for Hallo3; it takes {sorted(HALLO_ONLY)} only at their "
                         "defaults", unknown[0])
    refused: dict[str, list[str]] = {}
    for name, value in options.items():
        default, why = HALLO_ONLY[name]
        if name == "weights" and isinstance(value, RegionWeights):
            changed = [f"{region}_weight={getattr(value, region):g}" for region in ("pose", "face", "lip")
                       if getattr(value, region) != getattr(default, region)]
        else:
            changed = [f"{name}={value!r}"] if value != default and not (name == "face_options" and not value) else []
        if changed:
            refused.setdefault(why, []).extend(changed)
    if refused:
        said = "; ".join(f"{', '.join(names)}: {why}" for why, names in refused.items())
        first = next(iter(refused.values()))[0].split("=", 1)[0]
        raise InputError(f"Hallo3 cannot honour {said}. Leave them at their defaults, or use Hallo weights", first)


FAMILY = Hallo3Family()
