"""The prompt's text embedding: T5-v1.1-XXL's encoder (SPEC §8).

    encoder = T5TextEncoder.from_models_dir("ComfyUI/models/hallo3", device="cuda", dtype=torch.bfloat16)
    text = encoder.encode("A little girl talking around a campfire")   # (1, 226, 4096) float32
    uncond = unconditional_text(text)                                  # zeros: the release's uc

The release pads or truncates the prompt to 226 tokens (EOS `</s>` last, pad id 0) and runs the encoder
with **no attention mask** (the padding tokens are encoded and attended to); the unconditional branch is
all zeros, not T5(""), so T5 runs once per prompt and can be freed afterwards.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .._optional import require
from ..audio.wav2vec import quiet_transformers
from ..errors import CheckpointError, HalloWarning, InputError

T5_DIR = Path("t5-v1_1-xxl")
TEXT_LENGTH = 226  # tokens the released DiT reads (its learned text positions)
SPIECE = "spiece.model"


def _where_to_get(folder: Path) -> str:
    return (
        f"download the folder {T5_DIR.as_posix()} of the Hugging Face repo fudan-generative-ai/hallo3 (any "
        f"T5-v1.1-XXL encoder folder with config.json, the weights and {SPIECE} works) to {str(folder)!r}"
    )


class PromptTokenizer:
    """T5's sentencepiece vocabulary, used directly: pieces of the prompt, cut to `length - 1`, then EOS,
    then pad ids up to `length` (what T5's tokenizer does with truncation and `padding="max_length"`).

    Not transformers' `T5Tokenizer`: since transformers 5 it converts `spiece.model` to a `tokenizers`
    model through sentencepiece's protobuf module, which (sentencepiece 0.2) needs protobuf >= 5, while
    mediapipe (face landmarks) pins protobuf < 5, so the conversion fails where our face analysis works.
    sentencepiece reads the file itself and gives the same ids for plain text (special-token strings such
    as "</s>" written inside a prompt are read as characters, not as the special token).
    """

    def __init__(self, spiece_model: str | Path, length: int = TEXT_LENGTH, eos_id: int = 1, pad_id: int = 0):
        spm = require("sentencepiece", "sentencepiece", "Hallo3's text encoder (the T5 tokenizer)")
        path = Path(spiece_model)
        if not path.is_file():
            raise CheckpointError(f"T5 tokenizer file {str(path)!r} is missing; {_where_to_get(path.parent)}")
        if length < 1:
            raise ValueError(f"length must be at least 1 (got {length})")
        try:
            self.model = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"T5 tokenizer file {str(path)!r} cannot be read ({exc}); download it again") from exc
        self.length, self.eos_id, self.pad_id = length, eos_id, pad_id

    def __call__(self, prompt: str) -> torch.Tensor:
        """(1, length) int64 token ids."""
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be text, got {type(prompt).__name__}", "prompt")
        pieces = self.model.encode(prompt)
        if len(pieces) > self.length - 1:
            warnings.warn(
                f"the prompt is {len(pieces)} tokens long; only the first {self.length - 1} are used "
                f"(the model reads {self.length} tokens, the last one marks the end)", HalloWarning, stacklevel=2,
            )
            pieces = pieces[: self.length - 1]
        ids = pieces + [self.eos_id] + [self.pad_id] * (self.length - 1 - len(pieces))
        return torch.tensor([ids], dtype=torch.int64)


def _dtype_argument(dtype: torch.dtype) -> dict:
    import transformers

    # transformers 5 renamed `torch_dtype` to `dtype` (the old name still works there, with a warning).
    major = int(transformers.__version__.split(".", 1)[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


class T5TextEncoder:
    """A T5 encoder folder (Hugging Face layout) loaded once; `encode` turns a prompt into its embedding."""

    def __init__(
        self,
        folder: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        length: int = TEXT_LENGTH,
    ):
        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise CheckpointError(f"T5 folder {str(self.folder)!r} has no config.json; {_where_to_get(self.folder)}")
        transformers = require("transformers", "transformers", "Hallo3's text encoder (T5)")
        self.device = torch.device(device)
        with quiet_transformers():
            try:
                # The dtype is given to from_pretrained, not applied afterwards: T5 keeps its `wo`
                # projections in float32 when loaded in float16, where they would overflow.
                model, info = transformers.T5EncoderModel.from_pretrained(
                    str(self.folder), output_loading_info=True, **_dtype_argument(dtype)
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise CheckpointError(
                    f"T5 folder {str(self.folder)!r} cannot be loaded ({exc}); {_where_to_get(self.folder)}"
                ) from exc
        # The token embedding may be stored once as `shared.weight` (tied); any other gap is a broken folder.
        missing = sorted(k for k in info.get("missing_keys", ()) if not k.endswith("embed_tokens.weight"))
        if missing:
            raise CheckpointError(
                f"T5 weights in {str(self.folder)!r} lack {len(missing)} tensors (e.g. {missing[0]!r}): not a T5 "
                f"encoder or a partial download; {_where_to_get(self.folder)}"
            )
        self.model = model.to(self.device).eval().requires_grad_(False)
        config = self.model.config
        self.tokenizer = PromptTokenizer(self.folder / SPIECE, length, config.eos_token_id, config.pad_token_id)
        self.hidden_size = int(config.d_model)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, **kwargs) -> "T5TextEncoder":
        """From the Hallo3 model folder (laid out like the Hugging Face repo)."""
        return cls(Path(models_dir) / T5_DIR, **kwargs)

    @torch.no_grad()
    def encode(self, prompt: str) -> torch.Tensor:
        """(1, length, d_model) float32 where the encoder's weights are (a placement may have moved them since it
        was loaded): the last hidden state, no attention mask."""
        ids = self.tokenizer(prompt).to(next(self.model.parameters()).device)
        return self.model(input_ids=ids).last_hidden_state.to(torch.float32)


def unconditional_text(text: torch.Tensor) -> torch.Tensor:
    """The release's unconditional text: exact zeros of the conditional embedding's shape (not T5 of "")."""
    return torch.zeros_like(text)
