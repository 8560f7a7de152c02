"""Every speed/memory option leaves the parity cases within tolerance (fp32, CPU)."""

from __future__ import annotations

import pytest

from tests.parity.conftest import assert_matches, case
from tests.parity.pipeline_cases import PREPROCESSING
from tests.parity.pipeline_runner import run_free

PIPELINE = case("pipeline")
pytestmark = pytest.mark.parity

FLAG_SETS = {
    # the release's order of work: ReferenceNet over all six rows every clip, one frame per VAE decode
    "release_order": dict(cache_reference=False, decode_batch=1),
    "cached_reference_batched_decode": dict(cache_reference=True, decode_batch=8),
    "channels_last": dict(cache_reference=True, decode_batch=8, channels_last=True),
}


@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
def test_pipeline_with_flags(flags: str, tiny_net, tiny_codec) -> None:
    if not PIPELINE.present:
        pytest.skip(f"case files pipeline.json/.safetensors not in {PIPELINE.root}")
    import copy

    from hallo_pipeline.hallo.speedups import apply_speedups
    from hallo_pipeline.hallo.vae import LatentCodec

    opts = dict(FLAG_SETS[flags])
    codec = LatentCodec(tiny_codec.vae, tiny_codec.scaling_factor, decode_batch=opts.pop("decode_batch"))
    net = tiny_net
    if opts.pop("channels_last", False):
        net = apply_speedups(copy.deepcopy(tiny_net), channels_last=True)
    outputs = run_free(PIPELINE, net, codec, **opts)
    failures = []
    for name in PIPELINE.names("expected.", "debug."):
        if name in PREPROCESSING:
            continue
        try:
            assert_matches(outputs[name], PIPELINE.tensors[name], PIPELINE.tolerance(name), name)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, f"pipeline with {flags}: " + "; ".join(failures)


DENOISE = case("denoise_step")


def _assert_denoise_step_matches(net, label: str) -> None:
    from hallo_pipeline.testing.hallo_cases import run_denoise_step

    outputs = run_denoise_step(net, DENOISE.tensors, DENOISE.settings)
    for name in ("expected.noise_pred", "expected.noise_pred_cond", "expected.noise_pred_uncond"):
        assert_matches(outputs[name], DENOISE.tensors[name], DENOISE.tolerance(name), f"denoise_step {label} {name}")


@pytest.mark.parametrize("flags", ["channels_last", pytest.param("compile", marks=pytest.mark.slow)])
def test_denoise_step_with_flags(flags: str, tiny_net, request, monkeypatch) -> None:
    import copy
    import os

    from hallo_pipeline.hallo.speedups import apply_speedups

    if not DENOISE.present:
        pytest.skip(f"case files denoise_step.json/.safetensors not in {DENOISE.root}")
    if flags == "compile" and os.environ.get("HALLO_SKIP_COMPILE") == "1":
        pytest.skip("HALLO_SKIP_COMPILE=1: torch.compile's parity check (about 4 minutes on 2 CPU cores) skipped")
    if flags == "compile":
        # Inductor's default cache is one folder in /tmp for every process on the machine; two runs writing
        # it at once corrupted it ("invalid ELF header"). This checkout keeps its own, under .pytest_cache.
        cache = request.config.cache.mkdir("torchinductor")
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    _assert_denoise_step_matches(apply_speedups(copy.deepcopy(tiny_net), **{flags: True}), flags)
    if flags == "compile":
        assert any(cache.iterdir()), f"torch.compile did not use the private cache folder {cache}"


@pytest.mark.parametrize("installed", ["flash3", "flash3_lse", "flash2", "sage"])
def test_denoise_step_through_attention_packages(installed: str, tiny_net, monkeypatch) -> None:
    """flash-attn and SageAttention as stand-ins with their own layouts (tests/fake_attention.py), in fp32 on the CPU:
    a transpose missing or misplaced in our wrappers moves the numbers far outside the tolerance."""
    import copy

    import torch
    import torch.nn.functional as F

    from hallo_pipeline.attention_backends import select_kernel
    from hallo_pipeline.hallo.speedups import apply_speedups
    from tests import fake_attention

    if not DENOISE.present:
        pytest.skip(f"case files denoise_step.json/.safetensors not in {DENOISE.root}")
    calls = fake_attention.install(monkeypatch, installed)
    # Chosen as on a GPU (choosing computes nothing), then run through the stand-ins here.
    kernel = select_kernel("sage" if installed == "sage" else "flash", torch.device("cuda"), torch.float16)

    def bypassed(*args, **kwargs):
        raise AssertionError("an attention layer called scaled_dot_product_attention instead of its kernel")

    monkeypatch.setattr(F, "scaled_dot_product_attention", bypassed)
    _assert_denoise_step_matches(apply_speedups(copy.deepcopy(tiny_net), attention=kernel), installed)
    # (query, key) lengths, from the fixture set's own sizes: temporal over motion + clip frames; at the latent size
    # self, reference (own + reference tokens), cross (face tokens) and audio (audio tokens) attention
    s, config = DENOISE.settings, tiny_net.config
    time, tokens = s["n_motion_frames"] + s["frames"], s["latent_size"] ** 2
    expected = {(time, time), (tokens, tokens), (tokens, 2 * tokens), (tokens, config.imageproj.tokens),
                (tokens, config.audioproj.tokens)}
    assert expected <= {(q[1], k[1]) for q, k in calls}


def test_denoise_step_with_feedforward_slices(tiny_net) -> None:
    """The feed-forward's memory cap (on by default, it only cuts in at real sizes) forced down to
    a few tokens per slice on the tiny net."""
    import copy

    from hallo_pipeline.hallo.models.attention import FeedForward

    if not DENOISE.present:
        pytest.skip(f"case files denoise_step.json/.safetensors not in {DENOISE.root}")
    net = copy.deepcopy(tiny_net)
    feedforwards = [m for m in net.modules() if isinstance(m, FeedForward)]
    assert feedforwards
    for ff in feedforwards:
        ff.chunk_elements = 7 * ff.net[0].proj.out_features  # 7 tokens per slice
    _assert_denoise_step_matches(net, "feed-forward slices")
