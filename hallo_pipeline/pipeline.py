"""`HalloPipeline`: the one object every node and the command line wrap.

It holds the loaded networks and runs the stages of a generation, each cacheable on its own:

1. `analyze_face(image)`        -> FaceAnalysis     (landmarks, masks, identity; once per portrait)
2. `encode_audio(waveform, sr)` -> AudioFeatures    (wav2vec2 windows; once per audio)
3. `prepare_reference(face)`    -> PreparedReference (face tokens, FaceLocator, ReferenceNet rows)
4. `sample(reference, audio)`   -> FrameSegment     (the clip loop; any frame range, resumable)
5. `animate(image, audio, out)`  runs 1-4 and streams the frames into an mp4 with the audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .attention_backends import select_kernel
from .config import RunConfig
from .devices import Placement, resolve_device, resolve_dtype
from .errors import InputError
from .model_files import ModelFiles, locate
from .models import HalloNet
from .models.attention import AttentionKernel
from .sampling.clip_loop import ClipInputs, ClipSampler, MotionContext, Progress, SamplerSettings, portrait_rows
from .sampling.guided_step import IdentityConditioning, encode_identity
from .speedups import apply_speedups

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


@dataclass
class FrameSegment:
    """A run of generated frames (node type HALLO_FRAMES)."""

    frames: torch.Tensor  # (N, 3, S, S) float32 in [0, 1], CPU
    start_frame: int  # index of frames[0] in the whole video
    total_frames: int  # frames the whole audio needs (its true length, 25 fps)
    fps: int
    context: MotionContext  # continue the next segment from here

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames.shape[0]


def clip_range_for_frames(start_frame: int, end_frame: int, clip_length: int) -> range:
    if start_frame % clip_length:
        raise InputError(
            f"start_frame {start_frame} is not a multiple of the clip length {clip_length}; "
            f"segments start at clip boundaries (0, {clip_length}, {2 * clip_length}, ...)"
        )
    return range(start_frame // clip_length, math.ceil(end_frame / clip_length))


class HalloPipeline:
    def __init__(
        self,
        net: HalloNet,
        vae,
        files: ModelFiles | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        low_vram: bool = False,
        run: RunConfig | None = None,
        placement: Placement | None = None,
    ):
        """`placement`, when given, replaces the one `low_vram` would make: it decides where the
        VAE, ReferenceNet and audio encoder wait and how they reach `device` (ComfyUI passes one
        that asks its model manager)."""
        from .vae import LatentCodec

        self.files = files
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.run = run or RunConfig()
        if placement is None:
            offload = torch.device("cpu") if low_vram and self.device.type != "cpu" else None
            placement = Placement(self.device, offload)
        self.placement = placement
        self.net = net
        self.codec = LatentCodec(vae, self.run.vae_scaling_factor)
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
    ) -> "HalloPipeline":
        """Load the net and VAE of a model folder in the official layout (face and audio models load on first use).

        With a `placement` that has an offload device, the weights are read onto that device and
        the placement is responsible for bringing them to `device` before they compute.
        `attention`: the attention kernel of both UNets, one of `config.ATTENTION_OPTIONS` (auto = PyTorch's
        SDPA; flash and sage need their package, a CUDA device and fp16/bf16) or a kernel callable.
        `compile`: `torch.compile` the denoising UNet (the first denoising step pays the compile time).
        """
        from .checkpoint import load_net
        from .vae import load_vae

        files = locate(model_dir, variant)
        files.require("vae")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        kernel = select_kernel(attention, device, dtype)  # a wrong choice fails before gigabytes are read
        home = placement.offload if placement is not None and placement.offload is not None else device
        net = apply_speedups(load_net(files.net, dtype=dtype, device=home), attention=kernel, compile=compile)
        vae = load_vae(files.vae, device=home, dtype=dtype)
        return cls(net, vae, files=files, device=device, dtype=dtype, low_vram=low_vram, placement=placement)

    # ------------------------------------------------------------------------------------------
    # 1. face
    # ------------------------------------------------------------------------------------------
    @property
    def face_analyzer(self):
        """Landmarks (mediapipe) and identity (insightface) models, loaded on first use."""
        if self._face_analyzer is None:
            from .face.analysis import FaceAnalyzer

            self._require_files("face_models")
            self._face_analyzer = FaceAnalyzer(self.files.root)
        return self._face_analyzer

    def analyze_face(self, image, image_size: int | None = None, face_expand_ratio: float | None = None, **options):
        """Masks, prepared reference image and identity embedding of a portrait (`FaceAnalysis`).

        options: `multiple_faces` ("error" / "largest"), `allow_missing_identity`, `landmarks`.
        """
        return self.face_analyzer.analyze(
            image,
            image_size or self.run.image_size,
            self.run.face_expand_ratio if face_expand_ratio is None else face_expand_ratio,
            **options,
        )

    # ------------------------------------------------------------------------------------------
    # 2. audio
    # ------------------------------------------------------------------------------------------
    @property
    def audio_encoder(self):
        """wav2vec2, loaded on first use; in low-VRAM mode it computes on the CPU-offload device only while used."""
        if self._audio_encoder is None:
            from .audio.features import AudioEncoder

            self._require_files("wav2vec")
            self._audio_encoder = AudioEncoder(self.files.wav2vec, device=self.device)
            self.placement.home(self._audio_encoder.model)
        return self._audio_encoder

    def vocal_separator(self):
        from .audio.separation import VocalSeparator

        self._require_files("vocal_separator")
        return VocalSeparator(self.files.vocal_separator)

    def audio_chunk_seconds(self, mode: str = "auto") -> float | None:
        """Hallo2 encodes long audio in independent 60-second chunks; Hallo in one pass."""
        hallo2 = mode == "hallo2" or (mode == "auto" and self.variant == "hallo2")
        return HALLO2_AUDIO_CHUNK_SECONDS if hallo2 else None

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
        encoder = self.audio_encoder
        separator = self.vocal_separator() if separate_vocals else None
        with self.placement.use(encoder.model):
            return encoder.encode(
                waveform, sample_rate, clip_length or self.run.clip_length,
                chunk_seconds=self.audio_chunk_seconds(mode), separator=separator,
            )

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
        """Sampler settings; mode "hallo2" (or "auto" with Hallo2 weights) drops motion-frame pixels."""
        if mode not in ("auto", "hallo", "hallo2"):
            raise InputError(f"mode {mode!r} is unknown; use auto, hallo or hallo2")
        hallo2 = mode == "hallo2" or (mode == "auto" and self.variant == "hallo2")
        kwargs.setdefault("clip_length", self.run.clip_length)
        return SamplerSettings(motion_drop_rate=HALLO2_MOTION_DROP if hallo2 else 0.0, **kwargs)

    def iter_clips(
        self,
        reference: PreparedReference,
        audio,
        settings: SamplerSettings,
        start_frame: int = 0,
        end_frame: int | None = None,
        context: MotionContext | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[torch.Tensor, MotionContext, int]]:
        """Yield (frames, context after them, index of their first frame), trimmed to the audio."""
        total = audio.frames
        end_frame = total if end_frame is None else min(end_frame, total)
        if not 0 <= start_frame < end_frame:
            raise InputError(f"frame range {start_frame}..{end_frame} is empty; the audio has {total} frames")
        if audio.features.shape[0] % settings.clip_length:
            raise InputError(
                f"the audio features hold {audio.features.shape[0]} frames, not a multiple of the clip length "
                f"{settings.clip_length}; embed the audio with the clip length the sampler uses"
            )
        if reference.image_size % 64:
            raise InputError(f"image size {reference.image_size} must be a multiple of 64")
        clips = clip_range_for_frames(start_frame, end_frame, settings.clip_length)
        inputs = ClipInputs(
            identity=reference.identity,
            reference_image=reference.reference_image,
            face_region=reference.face_region,
            audio_features=audio.features,
            image_rows=reference.image_rows,
        )
        sampler = ClipSampler(self.net, self.codec, settings, progress, should_cancel, placement=self.placement)
        first = clips.start * settings.clip_length
        for frames, ctx in sampler.run(inputs, clips, context):
            reference.image_rows = inputs.image_rows  # keep the per-portrait rows for the next run
            keep = min(frames.shape[0], end_frame - first)
            yield frames[:keep], ctx, first
            first += frames.shape[0]

    def sample(self, reference: PreparedReference, audio, settings: SamplerSettings, **kwargs) -> FrameSegment:
        """All frames of a frame range (default: the whole audio) in memory."""
        parts, context, start = [], None, None
        for frames, context, first in self.iter_clips(reference, audio, settings, **kwargs):
            start = first if start is None else start
            parts.append(frames)
        return FrameSegment(torch.cat(parts), start, audio.frames, self.run.fps, context)


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
    ) -> Path:
        """Portrait + speech -> mp4 (h264 + AAC, 25 fps) with the original audio cut to the video.

        `audio` is a file path or a (waveform, sample_rate) pair. Frames are streamed into the
        file as clips finish; the file appears under its name only once it is complete.
        `output` is checked first (`video.check_output_path`): an output that is one of the input
        files, a folder, not .mp4/.mov/.mkv or not writable fails before any model runs.
        Returns the final path (absolute, `~` expanded).
        """
        from .audio.io import load_audio
        from .video import VideoWriter, check_output_path

        inputs = {name: value for name, value in (("image", image), ("audio", audio)) if isinstance(value, (str, Path))}
        output = check_output_path(output, inputs).path
        settings = settings or self.settings()
        waveform, sample_rate = load_audio(audio) if isinstance(audio, (str, Path)) else audio
        mode = "hallo2" if settings.motion_drop_rate > 0 else "hallo"
        face = self.analyze_face(image, image_size, face_expand_ratio, **(face_options or {}))
        features = self.encode_audio(waveform, sample_rate, settings.clip_length, separate_vocals, mode=mode)
        reference = self.prepare_reference(face)
        with VideoWriter(output, fps=self.run.fps, audio=waveform, sample_rate=sample_rate, inputs=inputs) as writer:
            for frames, _, _ in self.iter_clips(
                reference, features, settings, progress=progress, should_cancel=should_cancel
            ):
                writer.write(frames)
        return output


def stitch(segments: list[FrameSegment]) -> torch.Tensor:
    """Concatenate segments in frame order; they must tile the range without gaps or overlaps."""
    if not segments:
        raise InputError("no frame segments to stitch")
    ordered = sorted(segments, key=lambda s: s.start_frame)
    for a, b in zip(ordered, ordered[1:]):
        if b.start_frame != a.end_frame:
            raise InputError(
                f"segments do not join: one ends at frame {a.end_frame}, the next starts at {b.start_frame}"
            )
    return torch.cat([s.frames for s in ordered])
