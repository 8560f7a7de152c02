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

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..config import CROP_SCALE
from ..errors import InputError
from .config import Hallo3Config
from .face import Hallo3Face
from .noise import NoiseSource, SeededNoise
from .preprocess import FACE_BOX_EXPAND_RATIO, encode_audio
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

    def conditions(self, face: Hallo3Face, waveform, sample_rate: int, prompt: str, *, separator=None
                   ) -> VideoConditions:
        """Everything the segment loop needs besides the noise: the analysed face, the audio and the prompt."""
        audio = encode_audio(self.audio_encoder, waveform, sample_rate, separator=separator,
                             segment_frames=self.config.dit.num_frames)
        return VideoConditions(
            image=face.portrait.image,
            reference=face.portrait.reference,
            face_embedding=face.embedding.reshape(1, -1),
            text=self.text_encoder.encode(prompt),
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
        return face, self.conditions(face, waveform, sample_rate, prompt, separator=separator)

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
