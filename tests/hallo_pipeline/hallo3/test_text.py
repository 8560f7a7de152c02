"""The T5 prompt encoder on a tiny random T5 folder (the release's values are checked by the parity tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hallo_pipeline.errors import CheckpointError, HalloWarning, InputError

LENGTH = 24


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    from hallo_pipeline.testing.tiny_t5 import write_tiny_t5

    return write_tiny_t5(tmp_path_factory.mktemp("t5") / "t5-v1_1-xxl")


@pytest.fixture(scope="module")
def encoder(t5_dir):
    from hallo_pipeline.hallo3.text import T5TextEncoder

    return T5TextEncoder(t5_dir, length=LENGTH)


def test_prompt_is_pieces_then_eos_then_padding(encoder):
    import sentencepiece

    pieces = sentencepiece.SentencePieceProcessor(model_file=str(encoder.folder / "spiece.model")).encode("A boy")
    ids = encoder.tokenizer("A boy")
    assert ids.shape == (1, LENGTH) and ids.dtype == torch.int64
    assert ids[0].tolist() == pieces + [1] + [0] * (LENGTH - 1 - len(pieces))


def test_empty_prompt_is_eos_and_padding(encoder):
    assert encoder.tokenizer("")[0].tolist() == [1] + [0] * (LENGTH - 1)


def test_long_prompt_is_cut_with_a_warning_and_keeps_its_eos(encoder):
    prompt = " ".join(["A woman singing on a stage with warm lights"] * 4)
    with pytest.warns(HalloWarning, match=f"only the first {LENGTH - 1} are used"):
        ids = encoder.tokenizer(prompt)
    assert ids.shape == (1, LENGTH) and ids[0, -1] == 1 and bool((ids[0, :-1] > 2).all())


def test_prompt_must_be_text(encoder):
    with pytest.raises(InputError, match="prompt must be text"):
        encoder.tokenizer(None)


def test_encoding_has_no_attention_mask(encoder):
    text = encoder.encode("A little girl")
    assert text.shape == (1, LENGTH, encoder.hidden_size) and text.dtype == torch.float32
    ids = encoder.tokenizer("A little girl")
    with torch.no_grad():
        unmasked = encoder.model(input_ids=ids).last_hidden_state
        masked = encoder.model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    assert torch.equal(text, unmasked)
    assert not torch.allclose(text, masked)  # the padding tokens take part, as in the release


def test_unconditional_text_is_zeros(encoder):
    from hallo_pipeline.hallo3.text import unconditional_text

    text = encoder.encode("A boy reading")
    uncond = unconditional_text(text)
    assert uncond.shape == text.shape and uncond.dtype == text.dtype and not uncond.any()


def test_bfloat16_encoder_returns_float32(t5_dir):
    from hallo_pipeline.hallo3.text import T5TextEncoder

    encoder = T5TextEncoder(t5_dir, dtype=torch.bfloat16, length=LENGTH)
    assert encoder.model.dtype == torch.bfloat16
    assert encoder.encode("A boy").dtype == torch.float32


def test_from_models_dir_reads_the_repo_layout(t5_dir):
    from hallo_pipeline.hallo3.text import T5TextEncoder

    assert T5TextEncoder.from_models_dir(t5_dir.parent, length=LENGTH).folder == t5_dir


def test_missing_folder_or_tokenizer_is_a_checkpoint_error(tmp_path, t5_dir):
    from hallo_pipeline.hallo3.text import PromptTokenizer, T5TextEncoder

    with pytest.raises(CheckpointError, match="no config.json.*fudan-generative-ai/hallo3"):
        T5TextEncoder(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="spiece.model' is missing"):
        PromptTokenizer(tmp_path / "spiece.model")
    damaged = tmp_path / "damaged" / "spiece.model"
    damaged.parent.mkdir()
    damaged.write_bytes(b"not a sentencepiece model")
    with pytest.raises(CheckpointError, match="cannot be read"):
        PromptTokenizer(damaged)
