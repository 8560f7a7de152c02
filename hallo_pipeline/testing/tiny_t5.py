"""A tiny random T5 encoder folder in the Hugging Face layout of t5-v1_1-xxl (config.json, safetensors
weights, a sentencepiece `spiece.model` trained on a few sentences), for tests."""

from __future__ import annotations

import io
from pathlib import Path

from .._optional import require
from ..audio.wav2vec import quiet_transformers

SENTENCES = (
    "A little girl talking around a campfire",
    "An old man speaking in a quiet library",
    "A woman singing on a stage with warm lights",
    "A boy reading a story aloud at night",
)


def write_tiny_t5(folder: str | Path, *, d_model: int = 16, vocab_size: int = 40, seed: int = 0) -> Path:
    """Write the folder and return it. Token ids 0, 1 and 2 are <pad>, </s> and <unk>, as in T5."""
    import torch

    spm = require("sentencepiece", "sentencepiece", "Writing the tiny test T5 tokenizer")
    transformers = require("transformers", "transformers", "Writing the tiny test T5")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=model_bytes,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model_bytes.getvalue())
    config = transformers.T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // 4,
        d_ff=2 * d_model,
        num_layers=1,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    with quiet_transformers():
        transformers.T5EncoderModel(config).eval().save_pretrained(str(folder))
    return folder
