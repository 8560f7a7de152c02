"""Hallo3 from a model folder to frames: the files loaded once, then per video the prepared inputs (SPEC §8-§10)
and the segment loop (§11).

    generator = Hallo3Generator.from_model_folder(root, device="cuda", dtype=torch.bfloat16)
    face, conditions = generator.prepare("face.png", waveform, 16000, "A woman talking")   # framing="crop"
    paste = face.paste_back()                       # framing "stretch": write face.video_frames(...) as they are
    for segment in generator.generate(conditions, seed=42):
        for frame in face.video_frames(segment.frames):
            write(paste.paste(frame))               # the whole photo, moving

`animate.Hallo3Pipeline` (what the families seam loads, and the command line runs) builds on this object; the
nodes do not yet (issue #13).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import CROP_SCALE
from ..devices import Placement
from ..errors import InputError
from .config import Hallo3Config
from .face import Hallo3Face
from .noise import NoiseSource, SeededNoise
from .preprocess import FACE_BOX_EXPAND_RATIO, encode_audio
from .sampler import GUIDANCE_SCALE, STEPS, Step
from .segments import LoopSettings, SegmentOutput, VideoConditions, generate_segments
from .vae import VAEConfig

PROMPT_CACHE_SIZE = 8  # T5 states kept per prompt (1 x 226 x 4096 float32 = 3.7 MB each, on the host)


def default_placement(device: torch.device) -> Placement:
    """On a GPU, every network waits on the host and computes on the GPU only inside its phase (the default plan
    of benchmarks/results/hallo3-full-estimate-bf16.md); elsewhere nothing moves."""
    return Placement(device, torch.device("cpu") if device.type == "cuda" else None)


@dataclass(frozen=True)
class MemoryOptions:
    """How the main DiT is held (`memory.py`): fp8 weight storage, and how many of its layers stream from the
    host, and whether the VAE decodes in tiles. All off by default; streaming changes only memory and speed, fp8
    rounds the weights and tiling changes the decoder's frames a little (benchmarks/results/hallo3-fp8-drift-cpu.md)."""

    fp8: bool = False
    offload_blocks: int = 0
    tiled_decode: bool = False  # the VAE decodes in spatial tiles (diffusers' tiling): ~4x less, other frames

    def check(self, num_layers: int) -> "MemoryOptions":
        for name in ("fp8", "tiled_decode"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}", name)
        blocks = self.offload_blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= num_layers:
            raise InputError(
                f"offload_blocks {blocks!r} is out of range: give a whole number of the main DiT's layers to keep "
                f"on the host, 0 (none) to {num_layers} (all of these weights)", "offload_blocks",
            )
        return self

    def apply(self, main: torch.nn.Module) -> None:
        from .memory import store_fp8, stream_from_host

        self.check(len(main.transformer.layers))
        if self.fp8:
            store_fp8(main)
        if self.offload_blocks:
            stream_from_host(main, self.offload_blocks)


class Hallo3Generator:
    """The networks, VAE, T5 and wav2vec2 of one model folder, and the face models where the caller gives no
    landmarks or embedding (loaded on first use).

    `placement` (the shared `devices.Placement` interface: `device`, `offload`, `home`, `use`) decides where the
    networks wait and compute; each of T5, the reference DiT, the main DiT and the VAE computes only inside
    `placement.use(...)` of itself. Default: nothing moves, everything computes where the main DiT lies."""

    def __init__(self, nets, vae, text_encoder, audio_encoder, config: Hallo3Config, models_dir: Path | None = None,
                 placement: Placement | None = None, memory: MemoryOptions = MemoryOptions()):
        self.nets, self.vae, self.config = nets, vae, config
        self.text_encoder, self.audio_encoder = text_encoder, audio_encoder
        self.models_dir = models_dir
        self.memory = memory
        self.placement = placement if placement is not None else Placement(next(nets.main.parameters()).device)
        self._faces = None
        self._prompts: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def from_model_folder(
        cls,
        root: str | Path,
        config: Hallo3Config | None = None,
        vae_config: VAEConfig | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        placement: Placement | None = None,
        memory: MemoryOptions = MemoryOptions(),
    ) -> "Hallo3Generator":
        """A folder laid out like the Hugging Face repo (SPEC §1): hallo3/latest + its checkpoint,
        cogvideox-5b-i2v-sat/vae/3d-vae.pt, t5-v1_1-xxl/, wav2vec/wav2vec2-base-960h/, face_analysis/. Sizes:
        `config` / `vae_config`, else the `config.json` beside the weights, else the release's.

        `placement` default: `default_placement(device)`. The weights are read onto `placement.offload` when it
        is set (so the GPU never holds every network at once, not even while loading), else onto the device;
        then `memory` is applied to the main DiT and each network is homed."""
        from ..audio.features import AudioEncoder
        from .family import FAMILY
        from .loading import load_hallo3_models

        root = Path(root)
        placement = placement if placement is not None else default_placement(torch.device(device))
        load_on = placement.offload if placement.offload is not None else placement.device
        models = load_hallo3_models(FAMILY.locate(root), load_on, dtype, config, vae_config, memory=memory)
        nets = models.networks
        for module in (models.text_encoder.model, nets.reference, nets.main, models.vae.model):
            placement.home(module)
        # wav2vec2 stays float32 and on the device: its features are small, and the release runs it so.
        audio = AudioEncoder.from_models_dir(root, device=placement.device)
        return cls(nets, models.vae, models.text_encoder, audio, models.config, root, placement, memory)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """T5's states of `prompt` (1, L, D) float32 on the host; T5 computes inside `placement.use`, and the last
        few prompts are kept, so a re-run with the same prompt does not bring T5 back."""
        if prompt in self._prompts:
            self._prompts.move_to_end(prompt)
            return self._prompts[prompt]
        with self.placement.use(self.text_encoder.model):
            text = self.text_encoder.encode(prompt).to("cpu")
        self._prompts[prompt] = text
        while len(self._prompts) > PROMPT_CACHE_SIZE:
            self._prompts.popitem(last=False)
        return text

    @property
    def faces(self):
        if self._faces is None:
            from ..face.finder import FaceFinder

            if self.models_dir is None:
                raise InputError("pass landmarks and face_embedding: this generator has no model folder for the "
                                 "face models", "face_embedding")
            self._faces = FaceFinder(self.models_dir)
        return self._faces

    def analyze_face(
        self,
        image,
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
        face_expand_ratio: float = FACE_BOX_EXPAND_RATIO,
        *,
        multiple_faces: str = "error",
        allow_missing_identity: bool = False,
        landmarks: np.ndarray | None = None,
        face_embedding: np.ndarray | torch.Tensor | None = None,
    ) -> Hallo3Face:
        """The photo (path, PIL, array) analysed for these weights: `face.analyze_face`, with this folder's face
        models where `landmarks` (478, 2) pixels or `face_embedding` (512,) are not given."""
        from .face import analyze_face

        finder = self.faces if landmarks is None or face_embedding is None else None
        return analyze_face(finder, image, self.config, framing, crop_scale, face_expand_ratio, multiple_faces,
                            allow_missing_identity, landmarks=landmarks, face_embedding=face_embedding)

    def encode_audio(self, waveform, sample_rate: int, *, separator=None):
        """wav2vec2 windows of the waveform padded to whole segments (`preprocess.encode_audio`; `.frames` is the
        true length)."""
        return encode_audio(self.audio_encoder, waveform, sample_rate, separator=separator,
                            segment_frames=self.config.dit.num_frames)

    @staticmethod
    def conditions(face: Hallo3Face, audio, text: torch.Tensor) -> VideoConditions:
        """Everything the segment loop needs besides the noise: the analysed face, the audio features
        (`encode_audio`) and the prompt's T5 states (`encode_prompt`)."""
        return VideoConditions(
            image=face.portrait.image,
            reference=face.portrait.reference,
            face_embedding=face.embedding.reshape(1, -1),
            text=text,
            audio=audio.features,
            frames=audio.frames,
        )

    def prepare(
        self,
        image,
        waveform,
        sample_rate: int,
        prompt: str,
        *,
        landmarks: np.ndarray | None = None,
        face_embedding: np.ndarray | torch.Tensor | None = None,
        separator=None,
        allow_missing_identity: bool = False,
        expand_ratio: float = FACE_BOX_EXPAND_RATIO,
        framing: str = "crop",
        crop_scale: float = CROP_SCALE.default,
        multiple_faces: str = "error",
    ) -> tuple[Hallo3Face, VideoConditions]:
        """Everything one video needs, from a photo (path, PIL, array), a waveform and the prompt: the analysed face
        (its `portrait`, and its `framing` and `photo` to paste the frames back with, `Hallo3Face.paste_back`) and
        the conditions. `framing`: "crop" (a rectangle around the face, `crop_scale` x its size) or "stretch" (the
        release's geometry on the whole photo). `landmarks` (478, 2) pixels of the photo and `face_embedding`
        (512,) stand in for mediapipe and insightface when given."""
        face = self.analyze_face(
            image, framing, crop_scale, expand_ratio, multiple_faces=multiple_faces,
            allow_missing_identity=allow_missing_identity, landmarks=landmarks, face_embedding=face_embedding,
        )
        audio = self.encode_audio(waveform, sample_rate, separator=separator)
        return face, self.conditions(face, audio, self.encode_prompt(prompt))

    def generate(
        self,
        conditions: VideoConditions,
        seed: int = 42,
        *,
        steps: int = STEPS.default,
        guidance: float = GUIDANCE_SCALE,
        noise: NoiseSource | None = None,
        on_step: Callable[[int, Step, torch.Tensor, torch.Tensor], None] | None = None,
        on_reference: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    ) -> Iterator[SegmentOutput]:
        """The video segment by segment (a generator). `noise` replaces the seeded source (e.g. recorded draws);
        `on_step`, `on_reference`: see `generate_segments`."""
        settings = LoopSettings.from_config(self.config, steps=steps, guidance=guidance)
        noise = noise if noise is not None else SeededNoise(seed)
        return generate_segments(self.nets, self.vae, conditions, noise, settings, placement=self.placement,
                                 tiled_decode=self.memory.tiled_decode, on_step=on_step, on_reference=on_reference)
