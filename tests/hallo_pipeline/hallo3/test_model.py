"""Building the Hallo3 networks and loading a state dict strictly, in a chosen dtype."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import CheckpointError
from hallo_pipeline.hallo3.config import Hallo3Config
from hallo_pipeline.hallo3.model import build_hallo3, checkpoint_shapes, load_hallo3, to_checkpoint_key
from hallo_pipeline.hallo3.rope import rope_tables
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks

FREQS_COS = "model.diffusion_model.mixins.pos_embed.freqs_cos"


def checkpoint_of(nets) -> dict[str, torch.Tensor]:
    """A state dict with the release's keys, the way the file holds it (bf16 parameters, float32 tables)."""
    state = {to_checkpoint_key(k): v.clone() for k, v in nets.state_dict().items()}
    return {k: v if "freqs_" in k else v.to(torch.bfloat16) for k, v in state.items()}


def test_meta_build_holds_no_memory_and_lists_both_families() -> None:
    nets = build_hallo3(Hallo3Config(), device="meta")
    assert all(p.is_meta for p in nets.parameters())
    shapes = checkpoint_shapes(TINY)
    assert sum(k.startswith("model.diffusion_model.") for k in shapes) > sum(
        k.startswith("ref_model.diffusion_model.") for k in shapes
    )


def test_loads_strictly_with_every_value_in_place() -> None:
    state = checkpoint_of(random_networks())
    nets = load_hallo3(state, TINY)
    loaded = {to_checkpoint_key(k): v for k, v in nets.state_dict().items()}
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value.float()), key
    assert not any(p.requires_grad for p in nets.parameters())


def test_low_precision_load_keeps_the_rope_tables_float32() -> None:
    state = checkpoint_of(random_networks())
    nets = load_hallo3(state, TINY, dtype=torch.bfloat16)
    assert {p.dtype for p in nets.parameters()} == {torch.bfloat16}
    cos, _ = rope_tables(TINY.dit)
    assert nets.main.mixins.pos_embed.freqs_cos.dtype == torch.float32
    assert torch.equal(nets.main.mixins.pos_embed.freqs_cos, cos)


def test_rope_tables_stored_in_bf16_are_accepted_and_recomputed() -> None:
    state = checkpoint_of(random_networks())
    state[FREQS_COS] = state[FREQS_COS].to(torch.bfloat16)
    nets = load_hallo3(state, TINY)
    assert torch.equal(nets.main.mixins.pos_embed.freqs_cos, rope_tables(TINY.dit)[0])


def test_rope_table_of_another_grid_is_refused() -> None:
    state = checkpoint_of(random_networks())
    # Same token count, other layout: a config whose latent size is transposed.
    other = Hallo3Config.from_dict({"dit": {**_dit_fields(), "latent_height": 6, "latent_width": 4},
                                    "face_proj": _fields(TINY.face_proj), "audio_proj": _fields(TINY.audio_proj),
                                    "image_size": [48, 32], "sampling_num_frames": 3})
    state[FREQS_COS] = rope_tables(other.dit)[0]
    with pytest.raises(CheckpointError, match="RoPE table .*freqs_cos.* latent size"):
        load_hallo3(state, TINY)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("model.diffusion_model.transformer.layers.1.audio_attn.dense.bias"), "1 missing key, e.g."),
    (lambda s: s.update({"first_stage_model.decoder.conv_in.weight": torch.zeros(1)}), "1 unexpected key, e.g."),
    (lambda s: s.update({"ref_model.diffusion_model.time_embed.0.weight": torch.zeros(3, 3)}), "wrong shape"),
])
def test_a_file_that_does_not_fit_is_refused_with_the_keys_named(change, message: str) -> None:
    state = checkpoint_of(random_networks())
    change(state)
    with pytest.raises(CheckpointError, match=message):
        load_hallo3(state, TINY)


def test_a_bigger_config_than_the_file_is_refused() -> None:
    state = checkpoint_of(random_networks())
    bigger = Hallo3Config.from_dict({"dit": {**_dit_fields(), "num_layers": 3},
                                     "face_proj": _fields(TINY.face_proj), "audio_proj": _fields(TINY.audio_proj),
                                     "image_size": [32, 48], "sampling_num_frames": 3})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_hallo3(state, bigger)


def _fields(section) -> dict:
    import dataclasses

    return dataclasses.asdict(section)


def _dit_fields() -> dict:
    return _fields(TINY.dit)


def test_both_file_formats_load_the_same_networks(hallo3_parity_path) -> None:
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.key_table import WeightsFileError
    from hallo_pipeline.hallo3.model import load_hallo3_file

    folder = hallo3_parity_path / "models" / "hallo3" / "1"
    config = Hallo3Config.from_json_file(hallo3_parity_path / "tiny_config.json")
    from_safetensors = load_hallo3_file(folder / "mp_rank_00_model_states.safetensors", config).state_dict()
    from_pickle = load_hallo3_file(folder / "mp_rank_00_model_states.pt", config).state_dict()
    assert from_safetensors.keys() == from_pickle.keys()
    assert all(torch.equal(from_safetensors[k], from_pickle[k]) for k in from_pickle)
    with pytest.raises(WeightsFileError):  # the released sizes do not fit the tiny file
        load_hallo3_file(folder / "mp_rank_00_model_states.safetensors", Hallo3Config())
