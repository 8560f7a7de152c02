"""fp8 weight storage of the main DiT and layers streamed from the host (hallo3/memory.py) on random tiny networks
(the fp8 layers themselves: tests/hallo_pipeline/test_fp8.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hallo_pipeline.fp8 import FP8, Fp8Linear
from hallo_pipeline.hallo3.memory import fp8_targets, store_fp8, stream_from_host, streamed_modules
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks

DIT = TINY.dit


def _inputs(main, seed: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    t, z, h, w = DIT.latent_frames, DIT.out_channels, DIT.latent_height, DIT.latent_width
    ap = TINY.audio_proj
    bank = [torch.randn(1, DIT.tokens_per_frame, DIT.hidden_size, generator=g) for _ in range(DIT.num_layers)]
    audio = torch.randn(2, DIT.num_frames, ap.seq_len, ap.blocks, ap.channels, generator=g)
    return {
        "latent": torch.randn(2, t, z, h, w, generator=g),
        "concat": torch.randn(2, t, z, h, w, generator=g),
        "timestep": torch.tensor([999, 999]),
        "text": torch.randn(2, DIT.text_length, DIT.text_hidden_size, generator=g),
        "face_tokens": main.project_face(torch.randn(2, TINY.face_proj.clip_embeddings_dim, generator=g)),
        "audio_tokens": main.project_audio(audio),
        "reference": main.reference_kv(bank),
        "_bank": bank,
    }


def _run(main, inputs: dict) -> tuple[torch.Tensor, list]:
    with torch.no_grad():
        kv = main.reference_kv(inputs["_bank"])
        args = {k: v for k, v in inputs.items() if not k.startswith("_")}
        return main(**{**args, "reference": kv}), kv


@pytest.fixture()
def main():
    return random_networks().main


def test_store_fp8_converts_the_layer_matrices_only(main) -> None:
    targets = {id(m) for _, _, m in fp8_targets(main)}
    kept = {name: p.clone() for name, p in main.named_parameters()}
    kept_ids = {name: id(m) for name, m in main.named_modules()}
    store_fp8(main)
    for name, module in main.named_modules():
        if kept_ids.get(name) in targets:
            assert isinstance(module, Fp8Linear) and module.weight.dtype == FP8, name
        elif isinstance(module, nn.Linear):
            assert type(module) is nn.Linear and torch.equal(module.weight, kept[f"{name}.weight"]), name
    layer = main.transformer.layers[0]
    adaln = main.mixins.adaln_layer.adaLN_modulations[0][1]
    for module in (layer.attention.query_key_value, layer.attention.dense, layer.face_attn.query,
                   layer.audio_attn.key_value, layer.mlp.dense_4h_to_h, adaln):
        assert isinstance(module, Fp8Linear)
    for module in (main.mixins.patch_embed.text_proj, main.mixins.final_layer.linear, main.time_embed[0]):
        assert type(module) is nn.Linear
    # The state dict still names every checkpoint tensor; each converted matrix adds its scale.
    names = set(main.state_dict())
    assert set(kept) <= names and sum(n.endswith("weight_scale") for n in names) == len(targets)


def test_fp8_changes_the_output_a_little(main) -> None:
    inputs = _inputs(main)
    before, kv_before = _run(main, inputs)
    store_fp8(main)
    after, kv_after = _run(main, inputs)
    relative = ((after - before).norm() / before.norm()).item()
    assert 0 < relative < 0.1, relative
    assert not torch.equal(kv_after[0][0], kv_before[0][0])  # the bank's K/V use the fp8 projection too


@pytest.mark.parametrize("blocks", [1, DIT.num_layers])
@pytest.mark.parametrize("fp8", [False, True], ids=["bf16-like", "fp8"])
def test_layers_streamed_from_the_host_give_the_same_output(blocks: int, fp8: bool) -> None:
    plain, streamed = random_networks().main, random_networks().main
    if fp8:
        store_fp8(plain), store_fp8(streamed)
    inputs = _inputs(plain)
    expected, kv = _run(plain, inputs)
    stream_from_host(streamed, blocks)
    out, kv_streamed = _run(streamed, inputs)
    assert torch.equal(out, expected)
    assert all(torch.equal(a, b) for pair, other in zip(kv, kv_streamed) for a, b in zip(pair, other))
    # Between forwards the streamed layers hold nothing on the module.
    for module in streamed_modules(streamed, blocks):
        assert all(p.numel() == 0 for p in module.parameters())


def test_moving_the_model_leaves_the_host_layers_on_the_host(main) -> None:
    """A placement moves the main DiT with `.to(device)`: the streamed layers' weights must stay on the host (and
    whole), the rest must move, and the DiT's resident bytes shrink by the streamed layers'."""
    def size(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    full = size(main.parameters())
    stream_from_host(main, 1)
    layer = main.transformer.layers[-1]
    host = {name: t.clone() for name, t in layer._hallo_host_copy.tensors.items()}
    on_host = sum(size(m._hallo_host_copy.tensors.values()) for m in streamed_modules(main, 1))
    assert 0 < on_host and size(main.parameters()) == full - on_host
    main.to("meta")
    assert main.transformer.layers[0].mlp.dense_h_to_4h.weight.device.type == "meta"
    copy = layer._hallo_host_copy.tensors
    assert all(copy[n].device.type == "cpu" and torch.equal(copy[n], host[n]) for n in host)
    assert set(copy) == {n for n, _ in layer.named_parameters()} | {n for n, _ in layer.named_buffers()}


def test_streaming_needs_a_count_of_layers_the_model_has(main) -> None:
    with pytest.raises(ValueError, match=f"0..{DIT.num_layers}"):
        stream_from_host(main, DIT.num_layers + 1)


def test_without_a_float8_dtype_hallo3s_fp8_is_refused_before_loading(tiny_hallo3_folder, monkeypatch) -> None:
    from hallo_pipeline import fp8
    from hallo_pipeline.errors import InputError
    from hallo_pipeline.families import load_pipeline
    from hallo_pipeline.hallo3.pipeline import Hallo3Generator

    monkeypatch.setattr(fp8, "FP8", None)
    monkeypatch.setattr(Hallo3Generator, "from_model_folder", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(InputError, match="fp8: this PyTorch .* has no float8_e4m3fn dtype") as err:
        load_pipeline(tiny_hallo3_folder, variant="hallo3", fp8=True, device="cpu")
    assert err.value.input == "fp8"
