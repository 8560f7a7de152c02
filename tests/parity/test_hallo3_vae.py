"""Hallo3's CogVideoX VAE against the release (fixture case `vae`, SPEC §6): the 3-frame and 1-frame
encodes with replayed posterior noise, and the chunked decode of 13 latents into 49 frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.parity.conftest import assert_matches, hallo3_case

pytestmark = pytest.mark.parity

CASE = hallo3_case("vae")


@pytest.fixture(scope="module")
def vae(hallo3_parity_path: Path):
    from hallo_pipeline.hallo3.vae import VAE_FILE, VAEConfig, load_vae

    if not CASE.present:
        pytest.skip(f"case vae not found in {hallo3_parity_path}")
    sizes = json.loads((hallo3_parity_path / "tiny_config.json").read_text())["vae"]
    return load_vae(hallo3_parity_path / "models" / VAE_FILE, VAEConfig.from_dict(sizes))


def _check(actual, name: str) -> None:
    assert_matches(actual, CASE.tensors[name], CASE.tolerance(name), f"vae {name}")


def test_scale_factor_is_the_cases(vae) -> None:
    assert vae.scale_factor == CASE.settings["scale_factor"]


@pytest.mark.parametrize("frames, which", [("input.three_frames", "3frame"), ("input.ref_image_masked", "1frame")])
def test_encode(vae, frames: str, which: str) -> None:
    x = CASE.tensors[frames]
    if x.ndim == 4:  # one image (1, 3, H, W) is a 1-frame video
        x = x.unsqueeze(2)
    noise = CASE.tensors[f"input.posterior_noise_{which}"]
    assert vae.latent_shape(x.shape) == tuple(noise.shape)
    _check(vae.moments(x), f"expected.moments_{which}")
    _check(vae.encode(x, noise), f"expected.latent_{which}_x0.7")


def test_decode_chunks_are_the_cases() -> None:
    from hallo_pipeline.hallo3.vae import decode_chunks

    z_frames = CASE.settings["decode_chunks"][-1][1]
    assert [list(c) for c in decode_chunks(z_frames)] == CASE.settings["decode_chunks"]
    frames = [shape[2] for shape in CASE.settings["decode_chunk_output_shapes"]]
    assert sum(frames) == CASE.tensors["expected.decoded_frames"].shape[2]


@pytest.mark.parametrize("scaled", [False, True])
def test_first_two_chunks(vae, scaled: bool) -> None:
    """The decoder is causal: the first two chunks' frames do not depend on later latents, so decoding
    only their latents ([0:3], [3:5], the cache carried between them) gives the first frames exactly.
    `decode` takes the scaled latents the sampler makes (x 0.7), `decode_unscaled` the case's."""
    from hallo_pipeline.hallo3.vae import decode_chunks

    chunks = CASE.settings["decode_chunks"][:2]
    z = CASE.tensors["input.decode_z"][:, :, : chunks[-1][1]]
    assert [list(c) for c in decode_chunks(z.shape[2])] == chunks
    frames = sum(shape[2] for shape in CASE.settings["decode_chunk_output_shapes"][:2])
    name = "expected.decoded_frames"
    expected = CASE.tensors[name][:, :, :frames]
    actual = vae.decode(z * vae.scale_factor) if scaled else vae.decode_unscaled(z)
    assert_matches(actual, expected, CASE.tolerance(name), f"vae {name}[:, :, :{frames}]")


@pytest.mark.slow
def test_chunked_decode(vae) -> None:
    _check(vae.decode_unscaled(CASE.tensors["input.decode_z"]), "expected.decoded_frames")

