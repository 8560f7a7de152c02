import pytest

from hallo_pipeline.hallo.config import NetConfig, UNetConfig
from tests.hallo_pipeline.hallo.tiny import tiny_config


def test_json_round_trip() -> None:
    for config in (NetConfig(), tiny_config()):
        assert NetConfig.from_dict(config.to_dict()) == config


def test_fixture_config_reads(parity_path) -> None:
    import json

    data = json.loads((parity_path / "tiny_config.json").read_text())
    config = NetConfig.from_dict(data)
    assert config.unet.block_out_channels == tuple(data["unet"]["block_out_channels"])
    assert config.unet.norm_num_groups == data["unet"]["norm_num_groups"]
    assert config.motion.norm_num_groups == 32  # hard-coded in the release, whatever the UNet uses


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="not divisible by norm_num_groups"):
        UNetConfig(block_out_channels=(30, 60, 60, 60), norm_num_groups=32)
