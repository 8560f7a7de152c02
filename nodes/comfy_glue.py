"""Everything our nodes need from ComfyUI's runtime, in one place.

Model folders (`folder_paths`), devices and precision (`comfy.model_management`), our networks
as ComfyUI models (`ModelPatcher` + `load_models_gpu`, so ComfyUI can offload us and others),
progress, previews and Cancel (`comfy.utils.ProgressBar`, `latent_preview`,
`throw_exception_if_processing_interrupted`) and the VIDEO type. The library (`hallo_pipeline`)
never sees any of it: it gets a placement, a progress callback and a cancel check.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy.model_patcher import ModelPatcher

from ..hallo_pipeline.attention_backends import select_kernel
from ..hallo_pipeline.config import ATTENTION_OPTIONS
from ..hallo_pipeline.devices import Placement
from ..hallo_pipeline.download import fetch
from ..hallo_pipeline.errors import InputError
from ..hallo_pipeline.families import family_of, holds_weights, locate, official_files
from ..hallo_pipeline.families import load_pipeline as load_family_pipeline
from ..hallo_pipeline.latent_preview import SD15

MODEL_FOLDER_KIND = "hallo"
DEVICE_OPTIONS = ["auto", "low_vram", "cpu"]
WEIGHT_DTYPES = ["default", "fp8_e4m3fn"]  # the loader's weight storage; fp8 -> the families' `fp8` option
PRECISIONS = ["auto", "fp16", "bf16", "fp32"]
ATTENTIONS = list(ATTENTION_OPTIONS)


# ----------------------------------------------------------------------------------------------
# model folders
# ----------------------------------------------------------------------------------------------
def register_model_folder() -> None:
    """`models/hallo`, after any `hallo:` paths the user listed in extra_model_paths.yaml."""
    folder_paths.add_model_folder_path(MODEL_FOLDER_KIND, os.path.join(folder_paths.models_dir, MODEL_FOLDER_KIND))


def model_folders() -> dict[str, Path]:
    """Combo label -> folder: each registered `hallo` path itself (listed even when empty, so that
    choosing it explains what to download) and its sub-folders that hold any model family's weights."""
    found: dict[str, Path] = {}
    for root in map(Path, folder_paths.get_folder_paths(MODEL_FOLDER_KIND)):
        label = root.name if root.name not in found else str(root)
        found.setdefault(label, root)
        if root.is_dir():
            for sub in sorted(p for p in root.iterdir() if p.is_dir() and holds_weights(p)):
                found.setdefault(f"{label}/{sub.name}", sub)
    return found


def model_folder_path(label: str) -> Path:
    folders = model_folders()
    if label not in folders:
        raise InputError(
            f"model folder {label!r} is not among the Hallo model folders ComfyUI knows "
            f"({', '.join(folders) or 'none'}); "
            f"put the weights under {os.path.join(folder_paths.models_dir, MODEL_FOLDER_KIND)} (or add a 'hallo:' path "
            "to extra_model_paths.yaml), then refresh ComfyUI and pick it"
        )
    return folders[label]


# ----------------------------------------------------------------------------------------------
# devices, precision and ComfyUI's model manager
# ----------------------------------------------------------------------------------------------
def choose_devices(option: str) -> tuple[torch.device, torch.device]:
    """(device that computes, device where idle weights wait)."""
    if option == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


def choose_dtype(precision: str, device: torch.device, half: str = "fp16") -> torch.dtype:
    """auto: what ComfyUI would pick for a model on this device, trying first the 16-bit precision the family
    was trained in (`half`: Hallo's weights are fp16, Hallo3 runs in bf16, whose range fp16 lacks)."""
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if half == "bf16" and mm.should_use_bf16(device):
        return torch.bfloat16
    if mm.should_use_fp16(device):
        return torch.float16
    if mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float32


class HalloModelPart(torch.nn.Module):
    """One unit ComfyUI loads and offloads (its log names it by this class); a plain container, because
    ModelPatcher writes bookkeeping attributes (`device`, ...) onto the module it wraps, which diffusers and
    transformers models refuse (their `device` is a read-only property)."""

    def __init__(self, modules):
        super().__init__()
        self.parts = torch.nn.ModuleList(modules)


class ComfyPlacement(Placement):
    """Our networks as ComfyUI models.

    The denoising parts of the net form the core; the VAE, ReferenceNet and audio encoder (the
    parts the library homes) are one ComfyUI model each. `use()` asks `load_models_gpu` for the
    parts a step needs, plus the core inside `computing()`, so ComfyUI frees VRAM for us by
    offloading other models (or our idle parts) and can offload us later. With `low_vram` the
    homed parts are also sent back to the offload device right after each use.
    """

    def __init__(self, device: torch.device, offload: torch.device, low_vram: bool = False):
        super().__init__(device, offload)
        self.low_vram = low_vram
        self._patchers: dict[int, ModelPatcher] = {}
        self._core: ModelPatcher | None = None
        self._computing = 0
        self._memory_required = 0

    def _manage(self, modules) -> ModelPatcher:
        patcher = ModelPatcher(HalloModelPart(modules), load_device=self.device, offload_device=self.offload)
        for m in modules:
            self._patchers[id(m)] = patcher
        return patcher

    def home(self, module: torch.nn.Module) -> torch.nn.Module:
        module.to(self.offload)
        if id(module) not in self._patchers:
            self._manage([module])
        return module

    def manage_core(self, net: torch.nn.Module | None) -> None:
        """The net's parts that nothing homed (denoising UNet, FaceLocator, projections); None: the family homes
        every network it has (Hallo3), so there is no core."""
        if net is not None:
            self._core = self._manage([m for m in net.children() if id(m) not in self._patchers])

    @property
    def patchers(self) -> list[ModelPatcher]:
        unique = {id(p): p for p in self._patchers.values()}
        return list(unique.values())

    def _load(self, patchers: list[ModelPatcher], memory: int = 0) -> None:
        # Full loads only: our layers are plain torch layers, which ComfyUI cannot run half on
        # the GPU the way it runs its own (comfy.ops) layers.
        mm.load_models_gpu(patchers, memory_required=max(self._memory_required, memory), force_full_load=True)

    @contextlib.contextmanager
    def computing(self, memory_required: int = 0) -> Iterator[None]:
        """Keep the core on the device for the whole block (reference encoding, sampling)."""
        self._computing += 1
        self._memory_required = memory_required
        try:
            if self._core is not None:
                self._load([self._core])
            yield
        finally:
            self._computing -= 1
            self._memory_required = 0

    @contextlib.contextmanager
    def use(self, *modules: torch.nn.Module, memory: int = 0) -> Iterator[None]:
        """`memory`: what the block needs beside the weights (e.g. Hallo3's VAE decode, about 17 GB at full size):
        ComfyUI then offloads other models, ours included, until that much is free."""
        parts = list({id(p): p for p in (self._patchers[id(m)] for m in modules)}.values())
        # No core (Hallo3 homes every network): inside computing() only the parts in use are loaded.
        self._load(parts + ([self._core] if self._computing and self._core is not None else []), memory)
        try:
            yield
        finally:
            if self.low_vram:
                for patcher in parts:
                    patcher.detach()


def attention_kernel(attention: str, precision: str, device_option: str):
    """The attention kernel for the loader's options, or an InputError about the `attention` input."""
    device, _ = choose_devices(device_option)
    return select_kernel(attention, device, choose_dtype(precision, device))


def load_pipeline(folder: Path, variant: str, precision: str, device_option: str, attention="auto",
                  compile: bool = False, weight_dtype: str = "default"):
    """The pipeline of the folder's model family, its weights waiting on ComfyUI's offload device, each part a
    ComfyUI model. `attention`: an option name or a kernel from `attention_kernel`; `compile`: torch.compile
    the denoiser (families that cannot refuse it); `weight_dtype`: one of WEIGHT_DTYPES ("default" leaves fp8 to
    the family's low_vram)."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise InputError(f"weight_dtype {weight_dtype!r} is unknown; use {' or '.join(WEIGHT_DTYPES)}", "fp8")
    device, offload = choose_devices(device_option)
    placement = ComfyPlacement(device, offload, low_vram=device_option == "low_vram")
    files = locate(folder, variant)
    dtype = choose_dtype(precision, device, family_of(files.variant).half_precision)
    pipeline = load_family_pipeline(files, device=device, dtype=dtype, placement=placement, attention=attention,
                                    low_vram=device_option == "low_vram", compile=compile,
                                    fp8=True if weight_dtype == "fp8_e4m3fn" else None)
    placement.manage_core(pipeline.placement_core)
    return pipeline


# ----------------------------------------------------------------------------------------------
# progress, cancel, outputs
# ----------------------------------------------------------------------------------------------
class ProgressReporter:
    """The pipeline's progress callback: one ComfyUI progress bar over all steps of all clips, carrying a preview
    of the clip being sampled when the user's preview method asks for one (`LivePreviews`)."""

    def __init__(self, previews: LivePreviews | None = None):
        self.bar = None
        self.previews = previews if previews is not None else LivePreviews.for_this_run()

    def __call__(self, progress) -> None:
        if self.bar is None:
            self.bar = comfy.utils.ProgressBar(progress.total)
        image = None
        if self.previews is not None and progress.preview is not None:
            if self.previews.due():
                image = self.previews.image(progress.preview)
            if progress.done == progress.total:
                self.previews.log_cost()
        self.bar.update_absolute(progress.done, progress.total, image)


def preview_method() -> str:
    """The user's preview method (--preview-method, which newer ComfyUI lets a prompt override): none, auto,
    latent2rgb or taesd."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return "none"
    method = getattr(args, "preview_method", None)
    return str(getattr(method, "value", method) or "none")


class LivePreviews:
    """Sampler previews through ComfyUI's own previewers (`latent_preview`), the middle frame of the clip, within
    a time budget: after the first step's, a preview is made only when the previews so far plus one more (priced
    at the dearest one yet) stay within `share` of the time since sampling began. So however fast the steps and
    slow the previewer, the previews take about that share, or the first preview's time if that is more."""

    SHARE = 0.02  # under the 3 % we promise, with room for a preview dearer than any before it

    def __init__(self, method: str, share: float = SHARE, clock: Callable[[], float] = time.perf_counter):
        self.method, self.share, self.clock = method, share, clock
        self.start, self.spent, self.dearest, self.count = clock(), 0.0, 0.0, 0
        self.sending: float | None = None  # seconds the server spends sending one preview (`_time_sending`)
        self._previewer = None
        self._looked = False

    @classmethod
    def for_this_run(cls) -> LivePreviews | None:
        """None when the method is none: then nothing at all is done for previews."""
        method = preview_method()
        return None if method == "none" else cls(method)

    def due(self) -> bool:
        if self._looked and self._previewer is None:
            return False  # these latents have no previewer: stop asking for them
        return self.spent + self.dearest <= self.share * (self.clock() - self.start)

    def image(self, make_preview) -> tuple | None:
        """ComfyUI's preview tuple (format, PIL image, max size) for the library's `Progress.preview`, or None
        when this latent space has no previewer."""
        begin = self.clock()
        try:
            preview = make_preview()
            frame = preview.middle.float()
            previewer = self.previewer(preview, frame.device)
            image = None if previewer is None else previewer.decode_latent_to_preview_image("JPEG", frame)
            if image is not None and self.sending is None:
                self.sending = self._time_sending(image)
            return image
        finally:
            cost = self.clock() - begin + (self.sending or 0.0)
            self.spent += cost
            self.dearest = max(self.dearest, cost)
            self.count += 1

    def _time_sending(self, image: tuple) -> float:
        """What the server does with each preview, on its own thread: fit it into the preview size, encode it.
        Done once here on the first preview, timed, and charged to every preview, so the budget holds for all
        the work a preview causes, not only ours."""
        from PIL import ImageOps

        begin = self.clock()
        kind, picture, size = image
        if size:
            picture = ImageOps.contain(picture, (size, size))
        picture.save(io.BytesIO(), format=kind, quality=95)
        return self.clock() - begin

    def log_cost(self) -> None:
        elapsed = self.clock() - self.start
        logging.debug("Hallo previews: %d took %.3f s of %.3f s sampling (%.2f %%)", self.count, self.spent, elapsed,
                      100 * self.spent / max(elapsed, 1e-9))

    def previewer(self, preview, device: torch.device):
        """The previewer for this run's latents, chosen once: ComfyUI's own choice (TAESD from models/vae_approx
        where the user asks for it and has the file, else latent2rgb) for the SD 1.5 latents; for the CogVideoX
        latents, for which ComfyUI has neither, latent2rgb with the map fitted to the portrait."""
        if not self._looked:
            self._looked = True
            self._previewer = _comfy_previewer(preview, self.method, device)
        return self._previewer


def _comfy_previewer(preview, method: str, device: torch.device):
    try:
        import latent_preview
    except ImportError:
        logging.info("Hallo: this ComfyUI has no latent_preview module, so the sampler shows no previews")
        return None
    if preview.space == SD15:
        from comfy.latent_formats import SD15 as SD15Format

        return latent_preview.get_previewer(device, SD15Format())
    if preview.rgb is None:
        logging.info("Hallo: no preview colours for %s latents, so the sampler shows no previews", preview.space)
        return None
    if method == "taesd":
        logging.info("Hallo: there is no TAESD decoder for %s latents; the previews use latent2rgb with colours "
                     "fitted to the portrait", preview.space)
    return latent_preview.Latent2RGBPreviewer(preview.rgb.factors.tolist(), preview.rgb.bias.tolist())


def download_missing(folder: Path, variant: str) -> None:
    """The loader's `download_missing`: the official files the folder lacks, one ComfyUI progress bar over their
    bytes; Cancel stops it between chunks (a partial file resumes next time)."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        mm.throw_exception_if_processing_interrupted()
        bar = bar or comfy.utils.ProgressBar(total)
        bar.update_absolute(done, total)

    fetch(folder, official_files(folder, variant), progress)


def cancel_check() -> bool:
    """The pipeline's `should_cancel`: raises ComfyUI's own interrupt, so Cancel ends the run as
    ComfyUI expects (an interrupted prompt, not an error)."""
    mm.throw_exception_if_processing_interrupted()
    return False


def each_item(count: int) -> Iterator[int]:
    """range(count) for a loop over frames: Cancel is checked before each item (ComfyUI's own interrupt)
    and one progress bar moves after each."""
    bar = comfy.utils.ProgressBar(count)
    for index in range(count):
        mm.throw_exception_if_processing_interrupted()
        yield index
        bar.update(1)


def output_device() -> torch.device:
    """Where node outputs live (ComfyUI's intermediate device: the CPU unless it runs --gpu-only)."""
    return mm.intermediate_device()


def to_output(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(output_device())


def make_video(images: torch.Tensor, audio: dict | None, fps: float):
    """A VIDEO for core SaveVideo: images [B,H,W,3] + AUDIO at `fps`."""
    try:
        from comfy_api.latest import InputImpl, Types

        components, video = Types.VideoComponents, InputImpl.VideoFromComponents
    except ImportError:  # ComfyUI before the V3 API, with the earlier home of the same classes
        from comfy_api.input_impl import VideoFromComponents as video
        from comfy_api.util import VideoComponents as components
    rate = Fraction(fps).limit_denominator(1001)
    return video(components(images=images, audio=audio, frame_rate=rate))
