"""Hallo3 from a model folder to frames: the files loaded once, then per video the prepared inputs (SPEC §8-§10)
and the segment loop (§11).

    generator = Hallo3Generator.from_model_folder(root, device="cuda", dtype=torch.bfloat16)
    portrait, conditions = generator.prepare("face.png", waveform, 16000, "A woman talking")
    for segment in generator.generate(conditions, seed=42):
        write(frames_to_uint8(segment.frames, square=portrait.square))

`animate.Hallo3Pipeline` (what the families seam loads, and the command line runs) builds on this object; the
nodes do not yet (issue #13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .config import Hallo3Config
from .noise import NoiseSource, SeededNoise
from .preprocess import FACE_BOX_EXPAND_RATIO, PreparedPortrait, encode_audio, prepare_portrait
from .sampler import GUIDANCE_SCALE, STEPS, Step
from .segments import LoopSettings, SegmentOutput, VideoConditions, generate_segments
from .vae import VAEConfig


class Hallo3Generator:
    """The networks, VAE, T5 and wav2vec2 of one model folder, and the face models where the caller gives no
    landmarks or embedding (loaded on first use)."""

    def __init__(self, nets, vae, text_encoder, audio_encoder, config: Hallo3Config, models_dir: Path | None = None):
        self.nets, self.vae, self.config = nets, vae, config
        self.text_encoder, self.audio_encoder = text_encoder, audio_encoder
        self.models_dir = models_dir
        self._faces = None

    @classmethod
    def from_model_folder(
        cls,
        root: str | Path,
        config: Hallo3Config | None = None,
        vae_config: VAEConfig | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "Hallo3Generator":
        """A folder laid out like the Hugging Face repo (SPEC §1): hallo3/latest + its checkpoint,
        cogvideox-5b-i2v-sat/vae/3d-vae.pt, t5-v1_1-xxl/, wav2vec/wav2vec2-base-960h/, face_analysis/. Sizes:
        `config` / `vae_config`, else the `config.json` beside the weights, else the release's."""
        from ..audio.features import AudioEncoder
        from .family import FAMILY
        from .loading import load_hallo3_models

        root = Path(root)
        models = load_hallo3_models(FAMILY.locate(root), device, dtype, config, vae_config)
        # wav2vec2 stays float32: its features are small, and the release runs it so.
        audio = AudioEncoder.from_models_dir(root, device=device)
        return cls(models.networks, models.vae, models.text_encoder, audio, models.config, root)

    @property
    def faces(self):
        if self._faces is None:
            from ..face.finder import FaceFinder

            if self.models_dir is None:
                raise InputError("pass landmarks and face_embedding: this generator has no model folder for the "
                                 "face models", "face_embedding")
            self._faces = FaceFinder(self.models_dir)
        return self._faces

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
    ) -> tuple[PreparedPortrait, VideoConditions]:
        """Everything one video needs, from a photo (path, PIL, array), a waveform and the prompt. `landmarks`
        (478, 2) pixels and `face_embedding` (512,) stand in for mediapipe and insightface when given."""
        from ..face.images import to_rgb_uint8

        rgb = to_rgb_uint8(image)
        if landmarks is None:
            landmarks = self.faces.find_landmarks(rgb)
        if face_embedding is None:
            face_embedding = self.faces.identity_encoder.embedding(rgb, allow_missing=allow_missing_identity)
        embedding = torch.as_tensor(np.asarray(face_embedding), dtype=torch.float32).reshape(1, -1)
        if embedding.shape[1] != self.config.face_proj.clip_embeddings_dim:
            raise InputError(
                f"face_embedding has {embedding.shape[1]} values; the face projection takes "
                f"{self.config.face_proj.clip_embeddings_dim} (insightface's raw embedding)", "face_embedding",
            )
        portrait = prepare_portrait(rgb, landmarks, self.config.segment.image_size, expand_ratio)
        audio = encode_audio(self.audio_encoder, waveform, sample_rate, separator=separator,
                             segment_frames=self.config.dit.num_frames)
        conditions = VideoConditions(
            image=portrait.image,
            reference=portrait.reference,
            face_embedding=embedding,
            text=self.text_encoder.encode(prompt),
            audio=audio.features,
            frames=audio.frames,
        )
        return portrait, conditions

    def generate(
        self,
        conditions: VideoConditions,
        seed: int = 42,
        *,
        steps: int = STEPS.default,
        guidance: float = GUIDANCE_SCALE,
        noise: NoiseSource | None = None,
        on_step: Callable[[int, Step, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> Iterator[SegmentOutput]:
        """The video segment by segment (a generator). `noise` replaces the seeded source (e.g. recorded draws)."""
        settings = LoopSettings.from_config(self.config, steps=steps, guidance=guidance)
        noise = noise if noise is not None else SeededNoise(seed)
        return generate_segments(self.nets, self.vae, conditions, noise, settings, on_step=on_step)
