"""Hallo3 sizes: released defaults, the tiny_config.json format, and refusals of sizes that cannot work."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hallo_pipeline.hallo3.config import DiTConfig, Hallo3Config


def test_defaults_are_the_released_geometry() -> None:
    dit = Hallo3Config().dit
    assert dit.head_dim == 64 and dit.rope_dims == (16, 24, 24)
    assert dit.latent_frames == 13 and dit.grid == (30, 45)
    assert dit.tokens_per_frame == 1350 and dit.video_tokens == 17550
    assert dit.text_length + dit.video_tokens == 17776  # rows of the learned position table
    assert dit.mlp_hidden_size == 12288


def test_reads_the_fixture_config(hallo3_parity_path) -> None:
    raw = json.loads((hallo3_parity_path / "tiny_config.json").read_text())
    config = Hallo3Config.from_json_file(hallo3_parity_path / "tiny_config.json")
    for section in ("dit", "face_proj", "audio_proj"):
        ours = dataclasses.asdict(getattr(config, section))
        assert {k: ours[k] for k in raw[section]} == raw[section]
    assert config.segment.image_size == tuple(raw["image_size"])
    assert config.segment.sampling_num_frames == raw["sampling_num_frames"] == config.dit.latent_frames


def test_missing_sections_keep_the_released_values() -> None:
    config = Hallo3Config.from_dict({"vae": {"ch": 32}, "t5": {"d_model": 8}})
    assert config == Hallo3Config()


def test_unknown_field_is_named() -> None:
    with pytest.raises(ValueError, match="hidden_sise"):
        Hallo3Config.from_dict({"dit": {"hidden_sise": 64}})


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"hidden_size": 100, "num_attention_heads": 3}, "not divisible"),
        ({"hidden_size": 96, "num_attention_heads": 4}, "multiple of 16"),
        ({"latent_height": 61}, "patch_size"),
        ({"num_frames": 48}, "time_compressed_rate"),
    ],
)
def test_impossible_dit_sizes_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiTConfig(**fields)


def test_inconsistent_sections_are_refused() -> None:
    with pytest.raises(ValueError, match="sampling_num_frames"):
        Hallo3Config.from_dict({"sampling_num_frames": 12})
    with pytest.raises(ValueError, match="latent size"):
        Hallo3Config.from_dict({"image_size": [64, 96]})
    with pytest.raises(ValueError, match="face token width"):
        Hallo3Config.from_dict({"face_proj": {"hidden_size": 24}})
    with pytest.raises(ValueError, match="audio token width"):
        Hallo3Config.from_dict({"audio_proj": {"output_dim": 48}})
