"""The Hallo3 DiT (SPEC §4): the main model and the reference model that fills its per-layer bank.

Module names follow the checkpoint (`mixins.*`, `transformer.*`, `time_embed.*` under
`model.diffusion_model.` / `ref_model.diffusion_model.`), so a state dict loads strictly. The trunk is written
here rather than taken from diffusers' `CogVideoXTransformer3DModel`: the learned positions on the text rows, the
reference bank rows in the self-attention and the face/audio cross-attentions have no counterpart there.

All conditioning is passed to `forward`; nothing is kept between calls.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InputError
from .config import DiTConfig, Hallo3Config
from .layers import DiTLayer, FrameConditions, HeadNorms, Modulation, ReferenceKV, Rope, modulate
from .memory import resident
from .projections import AudioProj, FaceProj
from .rope import rope_tables


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """(b,) -> (b, dim) float32: [cos(t f_k) ; sin(t f_k)], f_k = 10000^(-k / (dim/2)) (cos first, SPEC §4.1)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class PosEmbed(nn.Module):
    """Learned positions for [text ; video] and the stored RoPE tables (`mixins.pos_embed`)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.pos_embedding = nn.Parameter(
            torch.zeros(1, config.text_length + config.video_tokens, config.hidden_size)
        )
        cos, sin = rope_tables(config)
        # float32 whatever the model's dtype (the loader keeps them so): the angles need the precision.
        self.register_buffer("freqs_sin", sin)
        self.register_buffer("freqs_cos", cos)


class PatchEmbed(nn.Module):
    """Latent frames -> patch tokens; T5 states -> text tokens (`mixins.patch_embed`)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.in_channels, config.hidden_size, kernel_size=p, stride=p)
        self.text_proj = nn.Linear(config.text_hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, T, C, H, W) -> (b, T * rows * cols, D), frame-major, rows row-major."""
        b, frames = x.shape[:2]
        tokens = self.proj(x.flatten(0, 1)).flatten(2).transpose(1, 2)
        return tokens.reshape(b, -1, tokens.shape[-1])


class AdaLNLayer(nn.Module):
    """Per-layer AdaLN projections and per-head q/k LayerNorms (`mixins.adaln_layer`)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        n, d, hd = config.num_layers, config.hidden_size, config.head_dim
        self.adaLN_modulations = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(config.time_embed_dim, 12 * d)) for _ in range(n)
        )
        self.query_layernorm_list = nn.ModuleList(nn.LayerNorm(hd, eps=1e-6) for _ in range(n))
        self.key_layernorm_list = nn.ModuleList(nn.LayerNorm(hd, eps=1e-6) for _ in range(n))

    def modulation(self, layer: int, emb: torch.Tensor) -> Modulation:
        return Modulation.from_projection(self.adaLN_modulations[layer](emb))

    def norms(self, layer: int) -> HeadNorms:
        return HeadNorms(self.query_layernorm_list[layer], self.key_layernorm_list[layer])


class FinalLayer(nn.Module):
    """Output head (`mixins.final_layer`): LayerNorm (eps 1e-6), AdaLN shift/scale, linear to patch pixels."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        d, p = config.hidden_size, config.patch_size
        self.norm_final = nn.LayerNorm(d, eps=1e-6)
        self.linear = nn.Linear(d, p * p * config.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(config.time_embed_dim, 2 * d))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(emb).unsqueeze(1).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class Mixins(nn.Module):
    """SAT's `mixins.*`: embeddings, AdaLN and head; registration order is the checkpoint's key order."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.pos_embed = PosEmbed(config)
        self.patch_embed = PatchEmbed(config)
        self.adaln_layer = AdaLNLayer(config)
        self.final_layer = FinalLayer(config)


class Transformer(nn.Module):
    """SAT's `transformer.*`: the layers, the final LayerNorm and (main model) the two projections."""

    def __init__(self, config: Hallo3Config, cross_attention: bool):
        super().__init__()
        dit = config.dit
        d = dit.hidden_size
        self.position_embeddings = nn.Embedding(dit.max_sequence_length, d)  # unused SAT leftover
        self.layers = nn.ModuleList(
            DiTLayer(
                d,
                dit.num_attention_heads,
                dit.mlp_hidden_size,
                face_dim=dit.face_cross_attn_hidden_size if cross_attention else None,
                audio_dim=dit.cross_attn_hidden_size if cross_attention else None,
            )
            for _ in range(dit.num_layers)
        )
        self.final_layernorm = nn.LayerNorm(d, eps=1e-5)
        if cross_attention:
            self.audio_proj = AudioProj(config.audio_proj)
            self.face_proj = FaceProj(config.face_proj)


class Hallo3DiT(nn.Module):
    """One DiT. `cross_attention=True`: the main model (face/audio cross-attention, projections, reference
    bank keys); False: the reference model, whose layers' normalised video rows form the bank."""

    def __init__(self, config: Hallo3Config, cross_attention: bool = True):
        super().__init__()
        self.config = config
        dit = config.dit
        self.cross_attention = cross_attention
        self.mixins = Mixins(dit)
        self.transformer = Transformer(config, cross_attention)
        self.time_embed = nn.Sequential(
            nn.Linear(dit.hidden_size, dit.time_embed_dim), nn.SiLU(), nn.Linear(dit.time_embed_dim, dit.time_embed_dim)
        )

    # ------------------------------------------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def embed_time(self, timestep: torch.Tensor) -> torch.Tensor:
        """(b,) integer timesteps (as the sampler feeds them) -> (b, time_embed_dim)."""
        e = timestep_embedding(timestep, self.config.dit.hidden_size)
        return self.time_embed(e.to(self._dtype))

    def _check_latents(self, latent: torch.Tensor, concat: torch.Tensor) -> int:
        dit = self.config.dit
        expected = (dit.out_channels, dit.latent_height, dit.latent_width)
        for name, x in (("latent", latent), ("concat", concat)):
            if x.ndim != 5 or tuple(x.shape[2:]) != expected:
                raise InputError(
                    f"{name} has shape {tuple(x.shape)}; expected (batch, frames, {expected[0]}, {expected[1]}, "
                    f"{expected[2]}): latents of a {dit.latent_height * 8}x{dit.latent_width * 8} video",
                    name,
                )
        if latent.shape[:2] != concat.shape[:2]:
            raise InputError(
                f"latent {tuple(latent.shape)} and concat {tuple(concat.shape)} differ in batch or frames", "concat"
            )
        frames = latent.shape[1]
        if not 1 <= frames <= dit.latent_frames:
            raise InputError(f"{frames} latent frames given; the DiT takes 1 to {dit.latent_frames}", "latent")
        return frames

    def _check_text(self, text: torch.Tensor, batch: int) -> None:
        dit = self.config.dit
        if tuple(text.shape) != (batch, dit.text_length, dit.text_hidden_size):
            raise InputError(
                f"text has shape {tuple(text.shape)}; expected ({batch}, {dit.text_length}, {dit.text_hidden_size}): "
                "the T5 encoder's states of the padded prompt (zeros for the unconditional half)",
                "text",
            )

    def embed_inputs(
        self, latent: torch.Tensor, concat: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (text rows, video rows), each with its learned positions added (text rows too: QUIRK, SPEC §4.2)."""
        frames = self._check_latents(latent, concat)
        self._check_text(text, latent.shape[0])
        pe = self.mixins.patch_embed
        x = torch.cat([latent, concat], dim=2).to(self._dtype)  # noisy first, then concat
        video = pe(x)
        txt = pe.text_proj(text.to(self._dtype))
        n_text = txt.shape[1]
        pos = self.mixins.pos_embed.pos_embedding
        txt = txt + pos[:, :n_text]
        video = video + pos[:, n_text : n_text + frames * self.config.dit.tokens_per_frame]
        return txt, video

    def rope(self, frames: int) -> Rope:
        """The table rows of the first `frames` latent frames (rows are frame-major)."""
        rows = frames * self.config.dit.tokens_per_frame
        pe = self.mixins.pos_embed
        return pe.freqs_cos[:rows].float(), pe.freqs_sin[:rows].float()

    # ------------------------------------------------------------------------------------------------------
    # conditioning of the main model
    # ------------------------------------------------------------------------------------------------------
    def project_face(self, face_embedding: torch.Tensor) -> torch.Tensor:
        """(b, 512) -> (b, tokens, width); constant per video, so callers may compute it once."""
        self._require_main("project_face")
        return self.transformer.face_proj(face_embedding.to(self._dtype))

    def project_audio(self, audio_features: torch.Tensor) -> torch.Tensor:
        """(b, frames, window, layers, channels) -> (b, latent frames, tokens, width); once per segment.
        The unconditional half of CFG projects zeros (AudioProj(0) != 0, SPEC §8)."""
        self._require_main("project_audio")
        return self.transformer.audio_proj(audio_features.to(self._dtype))

    def reference_kv(self, bank: list[torch.Tensor]) -> list[ReferenceKV]:
        """Per-layer K/V of the reference bank (from `reference_bank` of the reference model), through this
        model's own projections; computed once per video and passed to every `forward`."""
        self._require_main("reference_kv")
        layers = self.transformer.layers
        if len(bank) != len(layers):
            raise InputError(f"the bank has {len(bank)} layers; the main DiT has {len(layers)}", "reference")
        adaln = self.mixins.adaln_layer
        kv = []
        for i, (layer, rows) in enumerate(zip(layers, bank)):
            with resident(layer, rows.device):  # a layer streamed from the host (memory.stream_from_host)
                kv.append(layer.attention.reference_kv(rows.to(self._dtype), adaln.norms(i)))
        return kv

    def _require_main(self, what: str) -> None:
        if not self.cross_attention:
            raise TypeError(f"{what} belongs to the main DiT; this is the reference DiT")

    def _frame_conditions(
        self, face_tokens: torch.Tensor, audio_tokens: torch.Tensor, batch: int, frames: int
    ) -> FrameConditions:
        dit = self.config.dit
        face_width = dit.face_cross_attn_hidden_size
        if face_tokens.ndim != 3 or face_tokens.shape[0] != batch or face_tokens.shape[2] != face_width:
            raise InputError(
                f"face_tokens have shape {tuple(face_tokens.shape)}; expected ({batch}, tokens, "
                f"{dit.face_cross_attn_hidden_size}) from project_face",
                "face_tokens",
            )
        if audio_tokens.ndim != 4 or tuple(audio_tokens.shape[:2]) != (batch, frames) or (
            audio_tokens.shape[3] != dit.cross_attn_hidden_size
        ):
            raise InputError(
                f"audio_tokens have shape {tuple(audio_tokens.shape)}; expected ({batch}, {frames}, tokens, "
                f"{dit.cross_attn_hidden_size}) from project_audio: one group of tokens per latent frame",
                "audio_tokens",
            )
        return FrameConditions(
            # The identity tokens are the same for every latent frame of a sample (sample-major order).
            face_tokens=face_tokens.to(self._dtype).repeat_interleave(frames, dim=0),
            audio_tokens=audio_tokens.to(self._dtype).flatten(0, 1),
            frame_rope=self.rope(1),
        )

    # ------------------------------------------------------------------------------------------------------
    # the passes
    # ------------------------------------------------------------------------------------------------------
    def _layers(
        self,
        text: torch.Tensor,
        video: torch.Tensor,
        emb: torch.Tensor,
        rope: Rope,
        reference: list[ReferenceKV] | None,
        conditions: FrameConditions | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        adaln = self.mixins.adaln_layer
        for i, layer in enumerate(self.transformer.layers):
            text, video, _ = layer(
                text,
                video,
                adaln.modulation(i, emb),
                adaln.norms(i),
                rope,
                reference[i] if reference is not None else None,
                conditions,
            )
        return text, video

    def _head(self, video: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """Video rows -> (b, T, C, H, W): token (t, h, w) feature c*p*p + i*p + j -> pixel (t, c, p h + i, p w + j)."""
        dit = self.config.dit
        p, (rows, cols) = dit.patch_size, dit.grid
        # final_layernorm acts row by row, so leaving out the text rows it would drop anyway is exact.
        x = self.mixins.final_layer(self.transformer.final_layernorm(video), emb)
        x = x.reshape(x.shape[0], frames, rows, cols, dit.out_channels, p, p)
        return x.permute(0, 1, 4, 2, 5, 3, 6).reshape(x.shape[0], frames, dit.out_channels, rows * p, cols * p)

    def forward(
        self,
        latent: torch.Tensor,
        concat: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        face_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        reference: list[ReferenceKV] | None = None,
    ) -> torch.Tensor:
        """The v-prediction (b, T, C, H, W), in `latent`'s dtype.

        latent, concat: (b, T, 16, h, w) noisy and concat latents; timestep: (b,) the integer timestep of the
        sampler's table; text: (b, L, text width) T5 states; main model only: face_tokens (b, n, width) from
        `project_face`, audio_tokens (b, T, n, width) from `project_audio`, reference from `reference_kv`.
        """
        if self.cross_attention and (face_tokens is None or audio_tokens is None or reference is None):
            raise TypeError("the main DiT needs face_tokens, audio_tokens and reference")
        text, video = self.embed_inputs(latent, concat, text)
        b, frames = latent.shape[:2]
        emb = self.embed_time(timestep.reshape(-1).expand(b))
        conditions = self._frame_conditions(face_tokens, audio_tokens, b, frames) if self.cross_attention else None
        text, video = self._layers(text, video, emb, self.rope(frames), reference, conditions)
        return self._head(video, emb, frames).to(latent.dtype)

    def reference_bank(
        self, ref_latent: torch.Tensor, text: torch.Tensor | None = None, with_output: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The reference pass (SPEC §4.7), reference model only: timestep 0, `ref_latent` (b, 1, 16, h, w) as
        both the noisy and the concat half, text zeros by default. -> (per-layer bank (b, R, D), the model's
        output if `with_output`, else None: the release computes it and throws it away)."""
        if self.cross_attention:
            raise TypeError("reference_bank belongs to the reference DiT; this is the main DiT")
        dit = self.config.dit
        b, frames = ref_latent.shape[:2]
        if text is None:
            text = ref_latent.new_zeros(b, dit.text_length, dit.text_hidden_size)
        txt, video = self.embed_inputs(ref_latent, ref_latent, text)
        emb = self.embed_time(torch.zeros(b, device=ref_latent.device))
        adaln, layers, rope = self.mixins.adaln_layer, self.transformer.layers, self.rope(frames)
        bank: list[torch.Tensor] = []
        for i, layer in enumerate(layers):
            mod = adaln.modulation(i, emb)
            if i == len(layers) - 1 and not with_output:
                # The last layer's output only feeds the discarded head: its bank rows are all we need.
                bank.append(layer.normalised_video(video, mod))
                break
            txt, video, rows = layer(txt, video, mod, adaln.norms(i), rope)
            bank.append(rows)
        output = self._head(video, emb, frames).to(ref_latent.dtype) if with_output else None
        return bank, output
