"""The Hallo3 VAE: SAT -> diffusers names, config, loading checks, shapes and chunking (numerics: parity case vae)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo3.checkpoint import load_pickle
from hallo_pipeline.hallo3.vae import (
    VAE_FILE,
    Hallo3VAE,
    VAEConfig,
    build_vae,
    convert_sat_state_dict,
    decode_chunks,
    load_vae,
    sat_to_diffusers_key,
)


@pytest.fixture(scope="module")
def tiny(hallo3_parity_path: Path):
    sizes = json.loads((hallo3_parity_path / "tiny_config.json").read_text())["vae"]
    path = hallo3_parity_path / "models" / VAE_FILE
    return {"config": VAEConfig.from_dict(sizes), "path": path, "state": load_pickle(path, "state_dict")}


def test_config_from_the_fixture_section(hallo3_parity_path: Path) -> None:
    sizes = json.loads((hallo3_parity_path / "tiny_config.json").read_text())["vae"]
    config = VAEConfig.from_dict(sizes)
    args = config.diffusers_config()
    assert args["block_out_channels"] == tuple(sizes["ch"] * m for m in sizes["ch_mult"])
    assert args["layers_per_block"] == sizes["num_res_blocks"]
    assert args["latent_channels"] == sizes["z_channels"]
    assert config.scale_factor == sizes["scale_factor"]
    assert VAEConfig.from_dict({**sizes, "temporal_compress_times": 2}).temporal_compression == 2  # SAT's name


def test_released_sizes_have_the_released_parameter_count() -> None:
    vae = build_vae(VAEConfig())
    assert sum(v.numel() for v in vae.state_dict().values()) == 215_583_907  # SPEC §1


def test_every_sat_key_maps_once_onto_every_diffusers_key(tiny) -> None:
    state, config = tiny["state"], tiny["config"]
    mapped = {k: sat_to_diffusers_key(k, len(config.ch_mult)) for k in state}
    assert None not in mapped.values()
    assert len(set(mapped.values())) == len(mapped)  # no two SAT names land on one module
    ours = build_vae(config).state_dict()
    assert set(mapped.values()) == set(ours)
    assert {mapped[k]: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize("sat, diffusers", [
    ("encoder.down.1.block.2.nin_shortcut.weight", "encoder.down_blocks.1.resnets.2.conv_shortcut.weight"),
    ("encoder.down.0.downsample.conv.bias", "encoder.down_blocks.0.downsamplers.0.conv.bias"),
    ("encoder.mid.block_2.conv1.conv.weight", "encoder.mid_block.resnets.1.conv1.conv.weight"),
    ("decoder.mid.block_1.norm1.conv_y.conv.weight", "decoder.mid_block.resnets.0.norm1.conv_y.conv.weight"),
    ("decoder.up.0.block.3.norm2.norm_layer.weight", "decoder.up_blocks.3.resnets.3.norm2.norm_layer.weight"),
    ("decoder.up.3.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight"),
    ("decoder.norm_out.conv_b.conv.bias", "decoder.norm_out.conv_b.conv.bias"),
    ("encoder.conv_in.conv.weight", "encoder.conv_in.conv.weight"),
])
def test_key_rules(sat: str, diffusers: str) -> None:
    assert sat_to_diffusers_key(sat, 4) == diffusers


def test_loss_keys_are_dropped_and_strangers_named(tiny) -> None:
    levels = len(tiny["config"].ch_mult)
    state = dict(tiny["state"])
    state["loss.discriminator.main.0.weight"] = torch.zeros(1)
    assert set(convert_sat_state_dict(state, levels)) == set(convert_sat_state_dict(tiny["state"], levels))
    state["encoder.quant_conv.weight"] = torch.zeros(1)
    with pytest.raises(InputError, match=r"1 tensors that are not part of the CogVideoX VAE.*encoder\.quant_conv"):
        convert_sat_state_dict(state, levels, "vae.pt")


def test_loaded_tensors_are_the_files(tiny) -> None:
    vae = load_vae(tiny["path"], tiny["config"], dtype=torch.bfloat16)
    ours = vae.model.state_dict()
    levels = len(tiny["config"].ch_mult)
    assert all(torch.equal(ours[sat_to_diffusers_key(k, levels)], v) for k, v in tiny["state"].items())
    assert vae.dtype == torch.bfloat16 and not any(p.requires_grad for p in vae.model.parameters())


def test_file_of_other_sizes_is_named(tiny) -> None:
    with pytest.raises(InputError, match=r"3d-vae\.pt.*does not match the CogVideoX VAE \(ch 128.*wrong shape"):
        load_vae(tiny["path"], VAEConfig())


def test_wrong_file_is_named(hallo3_parity_path: Path) -> None:
    dit = hallo3_parity_path / "models" / "hallo3" / "1" / "mp_rank_00_model_states.pt"
    with pytest.raises(InputError, match=r"has no 'state_dict' entry"):
        load_vae(dit)


@pytest.mark.parametrize("frames, chunks", [
    (1, [(0, 1)]), (2, [(0, 2)]), (3, [(0, 3)]), (4, [(0, 2), (2, 4)]), (5, [(0, 3), (3, 5)]),
])
def test_decode_chunks(frames: int, chunks: list) -> None:
    assert decode_chunks(frames) == chunks


def test_decode_chunks_cover_every_frame_once() -> None:
    for n in range(1, 30):
        chunks = decode_chunks(n)
        assert [i for a, b in chunks for i in range(a, b)] == list(range(n))
        assert all(b - a == 2 for a, b in chunks[1:])


@pytest.fixture(scope="module")
def small_vae() -> Hallo3VAE:
    """A random VAE as small as the architecture allows, for shapes only."""
    torch.manual_seed(0)
    config = VAEConfig(ch=4, ch_mult=(1, 2), num_res_blocks=1, z_channels=4, norm_groups=2, temporal_compression=2)
    return Hallo3VAE(build_vae(config, device="cpu").eval(), config)


@pytest.mark.parametrize("t", [1, 3, 5])
def test_encode_decode_shapes(small_vae: Hallo3VAE, t: int) -> None:
    frames = torch.rand(1, 3, t, 8, 16) * 2 - 1
    shape = small_vae.latent_shape(frames.shape)
    latents = small_vae.encode(frames, torch.randn(shape))
    assert tuple(latents.shape) == shape
    decoded = small_vae.decode(latents, output_device="cpu")
    assert decoded.shape[:2] == (1, 3) and decoded.shape[-2:] == (8, 16)


def test_noise_is_the_callers(small_vae: Hallo3VAE) -> None:
    frames = torch.rand(1, 3, 1, 8, 16) * 2 - 1
    noise = torch.randn(small_vae.latent_shape(frames.shape))
    mean, logvar = small_vae.moments(frames).chunk(2, dim=1)
    expected = (mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * noise) * small_vae.scale_factor
    assert torch.equal(small_vae.encode(frames, noise), expected)
    assert not torch.equal(small_vae.encode(frames, -noise), expected)
    with pytest.raises(InputError, match="posterior noise has shape"):
        small_vae.encode(frames, noise[:, :, :, :1])


def test_bad_frames_are_named(small_vae: Hallo3VAE) -> None:
    with pytest.raises(InputError, match=r"frames of shape \(1, 3, 8, 16\) cannot be encoded"):
        small_vae.moments(torch.zeros(1, 3, 8, 16))
    with pytest.raises(InputError, match="multiples of 2"):
        small_vae.moments(torch.zeros(1, 3, 1, 9, 16))
    with pytest.raises(InputError, match="cannot be decoded"):
        small_vae.decode(torch.zeros(1, 5, 1, 4, 8))


def test_tiles_of_the_release_size_are_diffusers_defaults() -> None:
    from hallo_pipeline.hallo3.vae import tile_latents

    assert tile_latents(60, 90) == (30, 45)


@pytest.mark.parametrize("height, width", [(8, 12), (6, 10), (4, 6), (9, 13)])
def test_a_tiled_decode_covers_the_frame_exactly(height: int, width: int) -> None:
    """Any latent size: the tiled frames have the untiled ones' shape, and differ from them only a little."""
    from hallo_pipeline.hallo3.vae import Hallo3VAE, VAEConfig, build_vae

    torch.manual_seed(0)
    config = VAEConfig(ch=8, ch_mult=(1, 2, 2, 4), num_res_blocks=1, norm_groups=4)
    vae = Hallo3VAE(build_vae(config, "cpu").eval(), config)
    z = torch.randn(1, config.z_channels, 3, height, width)
    whole, tiled = vae.decode(z), vae.decode(z, tiled=True)
    assert tiled.shape == whole.shape
    rms = (tiled - whole).pow(2).mean().sqrt() / whole.pow(2).mean().sqrt()
    assert 0 < rms < 0.5
    assert not vae.model.use_tiling  # switched off again
