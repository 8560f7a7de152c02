"""The Hallo3 networks have the official checkpoint's keys and shapes, at full size (built on `meta`, compared
with ../shared/hallo3_keys.tsv) and at the fixture set's tiny size (its models/hallo3_keys.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hallo_pipeline.hallo3.config import Hallo3Config
from hallo_pipeline.hallo3.model import checkpoint_shapes, from_checkpoint_key, to_checkpoint_key
from tests.conftest import SHARED

KEYS_TSV = SHARED / "hallo3_keys.tsv"


def read_keys_tsv(path: Path) -> dict[str, tuple[int, ...]]:
    """`key<TAB>shape as a JSON list<TAB>dtype` per line, in state-dict order."""
    keys = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape, _dtype = line.split("\t")
            keys[key] = tuple(json.loads(shape))
    return keys


@pytest.fixture(scope="module")
def official_keys() -> dict[str, tuple[int, ...]]:
    if not KEYS_TSV.is_file():
        pytest.skip(f"{KEYS_TSV} not found: the official Hallo3 key list lives in ../shared beside the repository")
    return read_keys_tsv(KEYS_TSV)


def test_full_size_build_has_the_official_keys_in_order(official_keys) -> None:
    ours = checkpoint_shapes(Hallo3Config())
    assert list(ours) == list(official_keys)
    wrong = {k: (ours[k], official_keys[k]) for k in ours if ours[k] != official_keys[k]}
    assert not wrong, f"{len(wrong)} shapes differ (ours, official), e.g. {list(wrong.items())[:3]}"


def test_tiny_build_matches_the_fixture_key_list(hallo3_parity_path: Path) -> None:
    listed = json.loads((hallo3_parity_path / "models" / "hallo3_keys.json").read_text())
    config = Hallo3Config.from_json_file(hallo3_parity_path / "tiny_config.json")
    ours = checkpoint_shapes(config)
    assert list(ours) == list(listed)
    assert {k: list(v) for k, v in ours.items()} == {k: shape for k, (shape, _dtype) in listed.items()}


def test_key_mapping_round_trips_and_ignores_other_models() -> None:
    assert to_checkpoint_key("main.time_embed.0.weight") == "model.diffusion_model.time_embed.0.weight"
    assert to_checkpoint_key("reference.mixins.pos_embed.pos_embedding") == (
        "ref_model.diffusion_model.mixins.pos_embed.pos_embedding"
    )
    for key in ("model.diffusion_model.transformer.layers.3.face_attn.query.weight",
                "ref_model.diffusion_model.transformer.final_layernorm.bias"):
        assert to_checkpoint_key(from_checkpoint_key(key)) == key
    assert from_checkpoint_key("first_stage_model.encoder.conv_in.weight") is None
    assert from_checkpoint_key("conditioner.embedders.0.transformer.shared.weight") is None
