"""A tiny random wav2vec2 folder in the Hugging Face layout of wav2vec2-base-960h (CTC checkpoint,
safetensors, preprocessor config), for tests and `make-tiny-models`."""

from __future__ import annotations

from pathlib import Path

from .._optional import require
from ..audio.wav2vec import quiet_transformers


def tiny_wav2vec2_config(hidden_size: int = 16, layers: int = 12, conv_dim: int = 8, stable_layer_norm: bool = False):
    """wav2vec2-base's layout (12 layers, 7 conv stages) at a tiny width."""
    transformers = require("transformers", "transformers", "Building the tiny test wav2vec2")
    return transformers.Wav2Vec2Config(
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        conv_dim=(conv_dim,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer" if stable_layer_norm else "group",
        do_stable_layer_norm=stable_layer_norm,
        vocab_size=32,
    )


def write_tiny_wav2vec2(
    folder: str | Path,
    *,
    hidden_size: int = 16,
    layers: int = 12,
    conv_dim: int = 8,
    stable_layer_norm: bool = False,
    safetensors: bool = True,
    seed: int = 0,
) -> Path:
    """Write the folder and return it. `stable_layer_norm` picks the pre-norm variant (large models),
    whose feature encoder uses per-frame LayerNorm instead of the first layer's GroupNorm."""
    import torch

    transformers = require("transformers", "transformers", "Writing the tiny test wav2vec2")
    config = tiny_wav2vec2_config(hidden_size, layers, conv_dim, stable_layer_norm)
    torch.manual_seed(seed)
    model = transformers.Wav2Vec2ForCTC(config).eval()
    folder = Path(folder)
    with quiet_transformers():
        model.save_pretrained(str(folder))
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(
            str(folder)
        )
    if not safetensors:  # the older pickle layout (recent transformers only write safetensors)
        from safetensors.torch import load_file

        weights = folder / "model.safetensors"
        torch.save(load_file(str(weights)), folder / "pytorch_model.bin")
        weights.unlink()
    return folder
