"""The Hallo3 DiT: explicit conditioning, batch independence (CFG halves), reference pass, input checks."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo3.dit import timestep_embedding
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks


@pytest.fixture(scope="module")
def nets():
    return random_networks()


def inputs(nets, batch: int = 2, seed: int = 0) -> dict:
    dit, c = TINY.dit, TINY.audio_proj
    g = torch.Generator().manual_seed(seed)
    latent_shape = (batch, dit.latent_frames, dit.out_channels, dit.latent_height, dit.latent_width)
    ref = torch.randn(1, 1, *latent_shape[2:], generator=g)
    bank, _ = nets.reference.reference_bank(ref)
    main = nets.main
    return {
        "latent": torch.randn(latent_shape, generator=g),
        "concat": torch.randn(latent_shape, generator=g),
        "timestep": torch.full((batch,), 599.0 - 400.0 * seed),
        "text": torch.randn(batch, dit.text_length, dit.text_hidden_size, generator=g),
        "face_tokens": main.project_face(torch.randn(batch, TINY.face_proj.clip_embeddings_dim, generator=g)),
        "audio_tokens": main.project_audio(
            torch.randn(batch, dit.num_frames, c.seq_len, c.blocks, c.channels, generator=g)
        ),
        "reference": main.reference_kv(bank),
    }


def test_timestep_embedding_is_cos_then_sin() -> None:
    e = timestep_embedding(torch.tensor([0.0, 3.0]), 8)
    assert torch.equal(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert torch.isclose(e[1, 0], torch.cos(torch.tensor(3.0))) and torch.isclose(e[1, 4], torch.sin(torch.tensor(3.0)))


def test_output_is_a_latent_and_each_sample_is_its_own(nets) -> None:
    """The CFG batch: sample 1's output must not depend on sample 0's text, face or audio."""
    args = inputs(nets)
    with torch.no_grad():
        both = nets.main(**args)
        single = {k: (v[1:] if torch.is_tensor(v) else v) for k, v in args.items()}
        alone = nets.main(**single)
    assert both.shape == args["latent"].shape
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("condition", ["text", "face_tokens", "audio_tokens", "reference", "timestep"])
def test_every_condition_reaches_the_output(nets, condition: str) -> None:
    args = inputs(nets)
    with torch.no_grad():
        base = nets.main(**args)
        other = inputs(nets, seed=1)[condition]
        changed = nets.main(**{**args, condition: other})
    assert not torch.allclose(base, changed)


def test_main_model_needs_its_conditions(nets) -> None:
    args = inputs(nets)
    del args["reference"]
    with pytest.raises(TypeError, match="reference"):
        nets.main(**args)


@pytest.mark.parametrize("name, change, message", [
    ("latent", lambda x: x[..., :-1], "latent has shape"),
    ("concat", lambda x: x[:, :1], "differ in batch or frames"),
    ("text", lambda x: x[:, :-1], "text has shape"),
    ("audio_tokens", lambda x: x[:, :-1], "one group of tokens per latent frame"),
    ("face_tokens", lambda x: x[..., :-1], "face_tokens have shape"),
])
def test_wrong_shapes_are_input_errors(nets, name: str, change, message: str) -> None:
    args = inputs(nets)
    args[name] = change(args[name])
    with pytest.raises(InputError, match=message) as info:
        nets.main(**args)
    assert info.value.input == name


def test_reference_pass_gives_one_bank_per_layer_and_belongs_to_the_reference_model(nets) -> None:
    dit = TINY.dit
    ref = torch.randn(1, 1, dit.out_channels, dit.latent_height, dit.latent_width)
    bank, output = nets.reference.reference_bank(ref, with_output=True)
    assert len(bank) == dit.num_layers
    assert all(rows.shape == (1, dit.tokens_per_frame, dit.hidden_size) for rows in bank)
    assert output.shape == ref.shape
    short, _ = nets.reference.reference_bank(ref)
    for a, b in zip(bank, short):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="reference DiT"):
        nets.main.reference_bank(ref)
    with pytest.raises(TypeError, match="main DiT"):
        nets.reference.reference_kv(bank)


def test_bf16_weights_run_and_stay_near_fp32(nets) -> None:
    from hallo_pipeline.hallo3.model import load_hallo3, to_checkpoint_key

    args = inputs(nets)
    state = {to_checkpoint_key(k): v for k, v in nets.state_dict().items()}
    low = load_hallo3(state, TINY, dtype=torch.bfloat16)
    with torch.no_grad():
        ref = nets.main(**args)
        low_args = {**args, "reference": [tuple(t.bfloat16() for t in kv) for kv in args["reference"]]}
        out = low.main(**low_args)
    assert out.dtype == torch.float32  # the latent's dtype, for the float32 sampler
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
