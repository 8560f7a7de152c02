"""FaceProj / AudioProj: shapes, the causal frame-0 quirk, and input checks."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks


@pytest.fixture(scope="module")
def main():
    return random_networks().main


def audio_features(frames: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    c = TINY.audio_proj
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, c.seq_len, c.blocks, c.channels, generator=generator)


def test_segment_frames_become_latent_frames(main) -> None:
    tokens = main.project_audio(audio_features(TINY.dit.num_frames, batch=2))
    c = TINY.audio_proj
    assert tokens.shape == (2, TINY.dit.latent_frames, c.context_tokens, c.output_dim)


def test_latent_frame_zero_hears_only_video_frame_zero(main) -> None:
    """Frame 0 skips both convolutions (SPEC §5.2), like the causal VAE's first latent."""
    features = audio_features(TINY.dit.num_frames)
    changed = features.clone()
    changed[:, 1:] += 1.0
    a, b = main.project_audio(features), main.project_audio(changed)
    assert torch.equal(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1:], b[:, 1:])


def test_the_same_conv_serves_both_halvings(main) -> None:
    calls = []
    handle = main.transformer.audio_proj.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[-1]))
    main.project_audio(audio_features(TINY.dit.num_frames))
    handle.remove()
    frames = TINY.dit.num_frames
    assert calls == [frames - 1, (frames - 1) // 2]


def test_face_tokens_shape(main) -> None:
    c = TINY.face_proj
    tokens = main.project_face(torch.randn(3, c.clip_embeddings_dim))
    assert tokens.shape == (3, c.clip_extra_context_tokens, c.hidden_size)


def test_wrong_shapes_are_input_errors(main) -> None:
    with pytest.raises(InputError, match="face embedding") as info:
        main.project_face(torch.zeros(1, 7))
    assert info.value.input == "face_embedding"
    with pytest.raises(InputError, match="audio features") as info:
        main.project_audio(torch.zeros(1, 9, 2, 2, 4))
    assert info.value.input == "audio"
