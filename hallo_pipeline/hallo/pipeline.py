"""`HalloPipeline`: the one object every node and the command line wrap.

It holds the loaded networks and runs the stages of a generation, each cacheable on its own:

1. `analyze_face(image)`        -> FaceAnalysis     (landmarks, masks, identity; once per portrait)
2. `encode_audio(waveform, sr)` -> AudioFeatures    (wav2vec2 windows; once per audio)
3. `prepare_reference(face)`    -> PreparedReference (face tokens, FaceLocator, ReferenceNet rows)
4. `sample(reference, audio)`   -> FrameSegment     (the clip loop; any frame range, resumable)
5. `animate(image, audio, out)`  runs 1-4 and streams the frames, pasted back into the photo
                                 (`framing.py`), into an mp4 with the audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..attention_backends import AttentionKernel, select_kernel
from ..config import CLIP_LENGTH, CROP_SCALE, FACE_EXPAND_RATIO, FEATHER, FPS, IMAGE_SIZE, MAX_SIDE
from ..devices import Placement, resolve_device, resolve_dtype
from ..errors import InputError
from ..fp8 import require_fp8
from .model_files import ModelFiles, locate
from .models import HalloNet
from .sampling.clip_loop import (
    ClipInputs,
    ClipSampler,
    MotionContext,
    Progress,
    SamplerSettings,
    check_clip_length,
    portrait_rows,
)
from .sampling.guided_step import IdentityConditioning, encode_identity
from .sampling.segments import FrameSegment, plan_segment, stitch
from .speedups import apply_speedups

__all__ = ["HalloPipeline", "PreparedReference", "FrameSegment", "stitch"]

log = logging.getLogger("hallo_pipeline")

HALLO2_MOTION_DROP = 0.25  # SPEC §10
HALLO2_AUDIO_CHUNK_SECONDS = 60.0


@dataclass
class PreparedReference:
    """Everything the sampler needs from the portrait (node type HALLO_REFERENCE)."""

    identity: IdentityConditioning
    reference_image: torch.Tensor  # (3, S, S) in [-1, 1], CPU
    face_region: torch.Tensor  # (3, S, S) in [0, 1], CPU
    image_rows: list[torch.Tensor] | None = None  # ReferenceNet rows, filled by the first clip

    @property
    def image_size(self) -> int:
        return self.reference_image.shape[-1]


class HalloPipeline:
    def __init__(
        self,
        net: HalloNet,
        vae,
        files: ModelFiles | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        low_vram: bool = False,
        placement: Placement | None = None,
    ):
        """`placement`, when given, replaces the one `low_vram` would make: it decides where the
        VAE, ReferenceNet and audio encoder wait and how they reach `device` (ComfyUI passes one
        that asks its model manager)."""
        from .vae import LatentCodec

        self.files = files
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        if placement is None:
            offload = torch.device("cpu") if low_vram and self.device.type != "cpu" else None
            placement = Placement(self.device, offload)
        self.placement = placement
        self.net = net
        self.codec = LatentCodec(vae)
        # Parts that only work now and then wait off the GPU in low-VRAM mode.
        self.placement.home(self.codec.vae)
        self.placement.home(self.net.reference_unet)
        self._audio_encoder = None
        self._face_analyzer = None

    @property
    def variant(self) -> str:
        return self.files.variant if self.files is not None else "hallo"

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        variant: str = "auto",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        low_vram: bool = False,
        placement: Placement | None = None,
        attention: str | AttentionKernel = "auto",
        compile: bool = False,
        fp8: bool = False,
    ) -> "HalloPipeline":
        """Load the net and VAE of a model folder in the official layout (face and audio models load on first use).

        `model_dir` is a folder or the `ModelFiles` that `model_files.locate` found in one.

        With a `placement` that has an offload device, the weights are read onto that device and
        the placement is responsible for bringing them to `device` before they compute.
        `attention`: the attention kernel of both UNets, one of `config.ATTENTION_OPTIONS` (auto = PyTorch's
        SDPA; flash and sage need their package, a CUDA device and fp16/bf16) or a kernel callable.
        `compile`: `torch.compile` the denoising UNet (the first denoising step pays the compile time).
        `fp8`: both UNets' Linear and Conv2d weights stored in float8 e4m3, upcast layer by layer (`memory.py`;
        converted on the host, so the device never holds the 16-bit weights; benchmarks/results/hallo-fp8-drift-cpu.md).
        """
        from .checkpoint import load_net
        from .vae import load_vae

        files = model_dir if isinstance(model_dir, ModelFiles) else locate(model_dir, variant)
        files.require("vae")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        kernel = select_kernel(attention, device, dtype)  # a wrong choice fails before gigabytes are read
        if fp8:
            require_fp8(device)
        home = placement.offload if placement is not None and placement.offload is not None else device
        log.info("loading %s as %s on %s%s", files.describe(), str(dtype).removeprefix("torch."), device,
                 " (fp8 weights)" if fp8 else "")
        if fp8:
            from .memory import store_fp8

            net = store_fp8(load_net(files.net, dtype=dtype, device="cpu")).to(home)
        else:
            net = load_net(files.net, dtype=dtype, device=home)
        net = apply_speedups(net, attention=kernel, compile=compile)
        log.info("loading the VAE from %s", files.vae)
        vae = load_vae(files.vae, device=home, dtype=dtype)
        return cls(net, vae, files=files, device=device, dtype=dtype, low_vram=low_vram, placement=placement)

    # ------------------------------------------------------------------------------------------
    # 1. face
    # ------------------------------------------------------------------------------------------
    @property
    def face_analyzer(self):
        """Landmarks (mediapipe) and identity (insightface) models, loaded on first use."""
        if self._face_analyzer is None:
            from .face_analysis import FaceAnalyzer

            self._require_files("face_models")
            self._face_analyzer = FaceAnalyzer(self.files.root)
        return self._face_analyzer

    def analyze_face(self, image, image_size: int | None = None, face_expand_ratio: float | None = None, **options):
        """Masks, prepared reference image and identity embedding of a portrait (`FaceAnalysis`).

        options: `multiple_faces` ("error" / "largest"), `allow_missing_identity`, `landmarks`,
        `framing` ("crop", default: a square around the face; "stretch": the release's whole-photo
        resize) and `crop_scale`.
        """
        return self.face_analyzer.analyze(
            image,
            IMAGE_SIZE.default if image_size is None else image_size,
            FACE_EXPAND_RATIO.default if face_expand_ratio is None else face_expand_ratio,
            **options,
        )

    # ------------------------------------------------------------------------------------------
    # 2. audio
    # ------------------------------------------------------------------------------------------
    @property
    def audio_encoder(self):
        """wav2vec2, loaded on first use; in low-VRAM mode it computes on the CPU-offload device only while used."""
        if self._audio_encoder is None:
            from ..audio.features import AudioEncoder

            self._require_files("wav2vec")
            self._audio_encoder = AudioEncoder(self.files.wav2vec, device=self.device)
            self.placement.home(self._audio_encoder.model)
        return self._audio_encoder

    def vocal_separator(self):
        from ..audio.separation import VocalSeparator

        self._require_files("vocal_separator")
        return VocalSeparator(self.files.vocal_separator)

    def audio_chunk_seconds(self, mode: str = "auto") -> float | None:
        """Hallo2 encodes long audio in independent 60-second chunks; Hallo in one pass."""
        return HALLO2_AUDIO_CHUNK_SECONDS if uses_hallo2_loop(self.variant, mode) else None

    def resolve_mode(self, mode: str = "auto") -> str:
        """The sampling mode `mode` stands for with these weights: "auto" follows them (Hallo2 weights -> "hallo2")."""
        return "hallo2" if uses_hallo2_loop(self.variant, mode) else "hallo"

    @torch.no_grad()
    def encode_audio(
        self,
        waveform,
        sample_rate: int,
        clip_length: int | None = None,
        separate_vocals: bool = False,
        mode: str = "auto",
    ):
        """wav2vec2 windows of any waveform ((C, T) or (T,), any rate), padded to whole clips (`AudioFeatures`)."""
        clip_length = (CLIP_LENGTH.default if clip_length is None
                       else check_clip_length(clip_length, self.net.config.motion))
        chunk_seconds = self.audio_chunk_seconds(mode)
        encoder = self.audio_encoder
        separator = self.vocal_separator() if separate_vocals else None
        with self.placement.use(encoder.model):
            return encoder.encode(waveform, sample_rate, clip_length, chunk_seconds=chunk_seconds, separator=separator)

    def _require_files(self, *parts: str) -> None:
        if self.files is None:
            raise InputError("this pipeline was built without a model folder, so it has no face or audio models")
        self.files.require(*parts)

    # ------------------------------------------------------------------------------------------
    # 3. reference
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare_reference(self, face, image_rows: bool = False) -> PreparedReference:
        """Face tokens, FaceLocator features and token masks of an analysed portrait.

        `image_rows=True` also computes the portrait's ReferenceNet rows now instead of in the
        first clip, so an object that is kept and reused (a cached node output) carries them.
        """
        identity = encode_identity(
            self.net, torch.as_tensor(face.embedding).reshape(1, -1), face.face_region[None], face.masks
        )
        reference = PreparedReference(identity, face.reference_image.float().cpu(), face.face_region.float().cpu())
        if image_rows:
            reference.image_rows = portrait_rows(
                self.net, self.codec, reference.reference_image, identity.face_tokens, self.placement
            )
        return reference

    # ------------------------------------------------------------------------------------------
    # 4. sampling
    # ------------------------------------------------------------------------------------------
    def settings(self, mode: str = "auto", **kwargs) -> SamplerSettings:
        """Checked sampler settings; mode "hallo2" (or "auto" with Hallo2 weights) drops motion-frame pixels.

        kwargs are `SamplerSettings` fields; a value out of range, or a clip longer than these
        weights' motion modules allow, is an `InputError` naming it.
        """
        return self.check_settings(sampler_settings(self.variant, mode, **kwargs))

    def check_settings(self, settings: SamplerSettings) -> SamplerSettings:
        """What these weights add to `SamplerSettings`' own checks: the longest clip they can run."""
        if not isinstance(settings, SamplerSettings):
            raise InputError(
                f"settings must be a SamplerSettings (see HalloPipeline.settings), got {settings!r}", "settings"
            )
        check_clip_length(settings.clip_length, self.net.config.motion)
        return settings

    def iter_clips(
        self,
        reference: PreparedReference,
        audio,
        settings: SamplerSettings,
        start_frame: int = 0,
        end_frame: int | None = None,
        previous: FrameSegment | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[torch.Tensor, MotionContext, int]]:
        """Yield (frames, context after them, index of their first frame), trimmed to the audio.

        The frame range is planned by `sampling.segments.plan_segment` (continue `previous`, or
        start at `start_frame` from the portrait; stop before `end_frame`, default the end).
        """
        self.check_settings(settings)
        if audio.features.shape[0] % settings.clip_length:
            raise InputError(
                f"the audio features hold {audio.features.shape[0]} frames, not a multiple of the clip length "
                f"{settings.clip_length}; embed the audio with the clip length the sampler uses", "clip_length"
            )
        if reference.image_size % 64:
            raise InputError(f"image size {reference.image_size} must be a multiple of 64", "image_size")
        plan = plan_segment(audio.frames, settings.clip_length, start_frame, end_frame, previous)
        if plan.empty:
            return
        clip = settings.clip_length
        clips = range(plan.start // clip, -(-plan.end // clip))
        inputs = ClipInputs(
            identity=reference.identity,
            reference_image=reference.reference_image,
            face_region=reference.face_region,
            audio_features=audio.features,
            image_rows=reference.image_rows,
        )
        sampler = ClipSampler(self.net, self.codec, settings, progress, should_cancel, placement=self.placement)
        first = plan.start
        for frames, ctx in sampler.run(inputs, clips, plan.context):
            reference.image_rows = inputs.image_rows  # keep the per-portrait rows for the next run
            keep = min(frames.shape[0], plan.end - first)
            yield frames[:keep], ctx, first
            first += frames.shape[0]

    def sample(self, reference: PreparedReference, audio, settings: SamplerSettings, prompt: str | None = None,
               **kwargs) -> FrameSegment:
        """All frames of a frame range (default: the whole audio) in memory; kwargs as `iter_clips`.

        A segment that continues a `previous` one which already reached the end of the audio is
        empty (so a plan made for long audio also runs on short audio). `prompt`: Hallo is not steered by text,
        so only an empty one is taken (the argument exists because the nodes pass it to every family).
        """
        _refuse_prompt(prompt)
        parts, context, start = [], None, None
        for frames, context, first in self.iter_clips(reference, audio, settings, **kwargs):  # noqa: B007 - last context used after the loop
            start = first if start is None else start
            parts.append(frames)
        if not parts:
            previous = kwargs.get("previous")
            if previous is None:  # plan_segment only plans an empty range after a previous segment
                raise InputError("the frame range is empty", "end_frame")
            return previous.empty_continuation()
        return FrameSegment(torch.cat(parts), start, audio.frames, FPS, context)

    def sample_segment(self, reference: PreparedReference, audio, settings: SamplerSettings, plan, index: int,
                       prompt: str | None = None, **kwargs) -> FrameSegment:
        """Segment `index` of an independent-segment `plan` (`independent.py`), started from the portrait, over
        its render range, in 8-bit levels; kwargs: progress, should_cancel. The plan gives the cuts; its segments'
        seeds are derived from `settings.seed`, so a plan made before the seed was chosen renders as the CLI's."""
        from .independent import render_segment

        _refuse_prompt(prompt)
        segment = render_segment(self, reference, audio, settings, plan.with_seed(settings.seed), index, **kwargs)
        # In 8-bit levels, as a segment file stores them and ComfyUI-Distributed's PNGs carry them (losslessly
        # then: 255 * float32(k / 255) is k), so a join blends the same values wherever a segment was rendered.
        segment.frames = (segment.frames.clamp(0, 1) * 255).round() / 255
        return segment

    @property
    def placement_core(self) -> torch.nn.Module:
        """What stays on the device through a `placement.computing()` block: the denoising net (its parts that
        only work now and then are homed separately)."""
        return self.net

    def step_memory(self, reference: PreparedReference, audio) -> int:
        """Activation memory of one guided denoiser step (bytes), reserved when the core is loaded.

        In units of one first-level tensor (both CFG halves of every frame, 320 channels at image_size / 8):
        counted on the `meta` device (benchmarks/memory_estimate.py), the step peaks at 17.6 of them at 512
        and 768 pixels; 24 leaves room for allocator rounding and workspaces. `audio`: anything with the
        `clip_length` the clips are sampled at.
        """
        level0 = 2 * audio.clip_length * (reference.image_size // 8) ** 2 * 320 * torch.finfo(self.dtype).bits // 8
        return 24 * level0

    # ------------------------------------------------------------------------------------------
    # 5. everything
    # ------------------------------------------------------------------------------------------
    def animate(
        self,
        image,
        audio,
        output: str | Path,
        settings: SamplerSettings | None = None,
        image_size: int | None = None,
        face_expand_ratio: float | None = None,
        separate_vocals: bool = False,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        face_options: dict | None = None,
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
        max_side: int = MAX_SIDE.default,
        feather: float = FEATHER.default,
        color_match: bool = True,
        segments: int | None = None,
        segment_index: int | None = None,
    ) -> Path:
        """Portrait + speech -> mp4 (h264 + AAC, 25 fps) with the original audio cut to the video.

        `image` is a file path or an image (PIL, numpy, tensor); `audio` a file path or a
        (waveform, sample_rate) pair. With `framing="crop"` (the default) the model animates a square
        `crop_scale` x the face box, and every frame is pasted back into the photo (`feather`, `color_match`,
        `max_side`: see `framing.PasteBack`), so the video has the photo's size and aspect ratio (even
        sides; the long side at most `max_side` unless 0). `framing="stretch"` is the release: the whole
        photo squeezed to `image_size` square, and the video is those square frames.
        Every input is checked before any heavy work (`check_animate_inputs`; the output by
        `video.check_output_path`: one of the input files, a folder, not .mp4/.mov/.mkv or not
        writable fails before any model runs). Frames are streamed into the file as clips finish;
        the file appears under its name only once it is complete.
        Returns the final path (absolute, `~` expanded).

        `segments` N and `segment_index` i (opt-in, both or neither): render only segment i of the audio's
        independent-segment plan (`independent.plan_segments` over `frame_loudness`, with the settings' clip
        length and seed) into a lossless segment file without audio (`shards.py`); with framing "crop" it holds
        the crop, and how to paste it back. `shards.join_files` blends the N files, pastes the frames back into
        the photo and adds the audio. The default renders the exact, sequential video.
        """
        from ..audio.io import load_audio
        from ..independent import frame_loudness, plan_segments
        from ..shards import paste_recipe, shard_writer
        from ..video import VideoWriter, frames_to_uint8
        from .independent import iter_segment

        settings = self.check_settings(settings or self.settings())
        pasted = {"feather": feather, "color_match": color_match, "max_side": max_side}
        target = check_animate_inputs(
            self.files, image, audio, output, image_size, face_expand_ratio, separate_vocals, face_options,
            framing=framing, crop_scale=crop_scale, paste_options=pasted,
        )
        waveform, sample_rate = load_audio(audio) if isinstance(audio, (str, Path)) else audio
        plan = None
        if segments is not None or segment_index is not None:
            if segments is None or segment_index is None:
                raise InputError("segments and segment_index go together: give both to render one segment, or "
                                 "neither for the whole video", "segments" if segments is None else "segment_index")
            plan = plan_segments(frame_loudness(waveform, sample_rate), segments, settings.clip_length,
                                 settings.seed)
            plan.segment(segment_index)  # a bad index fails before the models run
        mode = "hallo2" if settings.motion_drop_rate > 0 else "hallo"
        face = self.analyze_face(
            image, image_size, face_expand_ratio, **(face_options or {}), framing=framing, crop_scale=crop_scale
        )
        paste = face.paste_back(**pasted) if framing == "crop" else None
        features = self.encode_audio(waveform, sample_rate, settings.clip_length, separate_vocals, mode=mode)
        reference = self.prepare_reference(face)
        report = {"progress": progress, "should_cancel": should_cancel}
        if plan is None:
            writer = VideoWriter(target.path, fps=FPS, audio=waveform, sample_rate=sample_rate)
            clips = self.iter_clips(reference, features, settings, **report)
        else:  # the model's frames, pasted back by `join` after the blend (shards.py)
            recipe = paste_recipe(face.photo, face.framing, **pasted) if paste is not None else None
            writer = shard_writer(target.path, plan, segment_index, paste=recipe)
            clips = iter_segment(self, reference, features, settings, plan, segment_index, **report)
            paste = None
        with writer:
            for frames, _, _ in clips:
                if paste is None:
                    writer.write(frames)
                    continue
                for pixels in frames_to_uint8(frames):  # one full-size photo in memory at a time
                    writer.write(paste.paste(pixels)[None])
        return target.path


def _refuse_prompt(prompt: str | None) -> None:
    """Hallo's runs take a prompt argument because the nodes pass one to every family; only an empty one."""
    if prompt and prompt.strip():
        raise InputError("Hallo is steered by the audio and the portrait only, not by a text prompt; clear the "
                         "prompt (it is for Hallo3 weights)", "prompt")


def uses_hallo2_loop(variant: str, mode: str) -> bool:
    """mode "auto" follows the weights (Hallo2 weights -> Hallo2's long-video loop)."""
    if mode not in ("auto", "hallo", "hallo2"):
        raise InputError(f"mode {mode!r} is unknown; use auto, hallo or hallo2", "mode")
    return mode == "hallo2" or (mode == "auto" and variant == "hallo2")


def sampler_settings(variant: str, mode: str = "auto", **kwargs) -> SamplerSettings:
    """`SamplerSettings` for weights of `variant` in `mode`; each value is checked as it is set."""
    hallo2 = uses_hallo2_loop(variant, mode)
    return SamplerSettings(motion_drop_rate=HALLO2_MOTION_DROP if hallo2 else 0.0, **kwargs)


FACE_OPTIONS = {"multiple_faces", "allow_missing_identity", "landmarks"}


def check_animate_inputs(
    files: ModelFiles | None,
    image,
    audio,
    output: str | Path,
    image_size: int | None = None,
    face_expand_ratio: float | None = None,
    separate_vocals: bool = False,
    face_options: dict | None = None,
    *,
    framing: str = "crop",
    crop_scale: float = CROP_SCALE.default,
    paste_options: dict | None = None,
):
    """Everything about an `animate` call that can be checked without heavy work, each problem an
    `InputError` naming its input: the files exist, the output can be written and overwrites no
    input, the sizes and framing options are in range, and the model folder has every part the run
    will need. `paste_options` are `framing.PasteBack`'s (feather, color_match, max_side).
    Returns the output plan (`video.OutputPlan`: the final path, and whether it replaces a file)."""
    from ..face.landmarks import check_multiple_faces_option
    from ..framing import check_framing_mode, check_paste_options
    from ..inputs import check_user_files
    from ..video import check_output_path
    from .masks import check_image_size

    inputs = check_user_files(image, audio)
    if image_size is not None:
        IMAGE_SIZE.check(check_image_size(image_size))
    if face_expand_ratio is not None:
        FACE_EXPAND_RATIO.check(face_expand_ratio)
    unknown = set(face_options or {}) - FACE_OPTIONS
    if unknown:
        raise InputError(f"unknown face options {sorted(unknown)}; use {sorted(FACE_OPTIONS)}", "face_options")
    check_multiple_faces_option((face_options or {}).get("multiple_faces", "error"))
    check_framing_mode(framing)
    CROP_SCALE.check(crop_scale)
    check_paste_options(**(paste_options or {}))
    if framing == "stretch" and (paste_options or {}).get("max_side", MAX_SIDE.default):
        raise InputError(
            "max_side caps the photo the frames are pasted back into; with framing='stretch' the video is the "
            "model's square frames (image_size), so leave max_side at 0 or use framing='crop'", "max_side",
        )
    plan = check_output_path(output, inputs)
    if files is not None:
        files.require(*required_parts(separate_vocals))
    return plan


def required_parts(separate_vocals: bool = False) -> list[str]:
    """The parts of a model folder (`ModelFiles.require`) a whole `animate` run reads."""
    return ["vae", "face_models", "wav2vec", *(["vocal_separator"] if separate_vocals else [])]
