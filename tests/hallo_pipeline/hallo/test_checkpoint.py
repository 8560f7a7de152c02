"""The loader: the official key set, safe strict loading, and an actionable error for each bad file."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hallo_pipeline.errors import CheckpointError
from hallo_pipeline.hallo.checkpoint import detect_config, find_net_file, load_net, read_state_dict
from hallo_pipeline.hallo.config import NetConfig
from hallo_pipeline.hallo.models import HalloNet
from tests.hallo_pipeline.hallo.tiny import random_net, tiny_config


def test_full_size_model_matches_official_key_list(net_keys_tsv: Path) -> None:
    official = {}
    for line in net_keys_tsv.read_text().splitlines():
        name, shape = line.split("\t")
        official[name] = tuple(ast.literal_eval(shape))
    with torch.device("meta"):
        net = HalloNet(NetConfig())
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert len(official) == 2656
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}
    assert sum(v.numel() for v in net.state_dict().values()) == 2_424_802_964


def test_sizes_detected_from_official_shapes(net_keys_tsv: Path) -> None:
    shapes = {}
    for line in net_keys_tsv.read_text().splitlines():
        name, shape = line.split("\t")
        shapes[name] = tuple(ast.literal_eval(shape))
    assert detect_config(shapes) == NetConfig()


@pytest.mark.parametrize("filename", ["net.pth", "net.safetensors"])
def test_parity_models_load_strictly(parity_path: Path, filename: str) -> None:
    from hallo_pipeline.hallo.config import NetConfig

    config = NetConfig.from_json_file(parity_path / "tiny_config.json")
    path = parity_path / "models" / filename
    net = load_net(path, config=config)
    state = read_state_dict(path)
    ours = net.state_dict()
    assert set(ours) == set(state)
    assert all(torch.equal(ours[k], state[k].float()) for k in state)
    assert all(v.dtype == torch.float32 for v in ours.values())


def test_parity_model_sizes_come_from_shapes(parity_path: Path) -> None:
    """The fixture's declared config is what the loader reads off the shapes (given only the
    settings shapes cannot tell)."""
    config = NetConfig.from_json_file(parity_path / "tiny_config.json")
    state = read_state_dict(parity_path / "models" / "net.safetensors")
    assert detect_config({k: v.shape for k, v in state.items()}, hints=config) == config


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.half() for k, v in random_net().state_dict().items()}


def _save_pth(state, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_load_casts_and_uses_sidecar_config(tmp_path: Path, tiny_state) -> None:
    import json

    (tmp_path / "hallo").mkdir()
    path = _save_pth(tiny_state, tmp_path / "hallo" / "net.pth")
    (tmp_path / "hallo" / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    found, variant = find_net_file(tmp_path)
    assert (found, variant) == (path, "hallo")
    net = load_net(found, dtype=torch.bfloat16)
    assert net.config == tiny_config()
    assert {p.dtype for p in net.state_dict().values()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in net.parameters())


def test_safetensors_and_pth_load_the_same(tmp_path: Path, tiny_state) -> None:
    save_file(tiny_state, str(tmp_path / "net.safetensors"))
    _save_pth(tiny_state, tmp_path / "net.pth")
    a = load_net(tmp_path / "net.safetensors", config=tiny_config()).state_dict()
    b = load_net(tmp_path / "net.pth", config=tiny_config()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_file_names_path_and_source(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not exist.*fudan-generative-ai/hallo"):
        load_net(tmp_path / "nope.pth")


def test_empty_model_folder_lists_expected_paths(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        find_net_file(tmp_path)
    text = str(err.value)
    assert "no Hallo weights found" in text
    for expected in ("hallo/net.safetensors", "hallo/net.pth", "hallo2/net.pth"):
        assert os.path.join(str(tmp_path), expected) in text


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        find_net_file(tmp_path / "missing")


def test_unknown_variant(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="variant 'hallo3' is unknown"):
        find_net_file(tmp_path, variant="hallo3")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "net.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_net(tmp_path / "net.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path: Path, tiny_state, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    if suffix == ".pth":
        _save_pth(tiny_state, full)
    else:
        save_file(tiny_state, str(full))
    cut = tmp_path / f"net{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"net\..*is damaged or truncated.*download it again"):
        load_net(cut)


def test_sd15_checkpoint_is_recognised(tmp_path: Path) -> None:
    state = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3),
        "first_stage_model.encoder.conv_in.weight": torch.zeros(4, 3, 3, 3),
    }
    path = _save_pth(state, tmp_path / "net.pth")
    with pytest.raises(CheckpointError,
                       match=r"is a Stable Diffusion checkpoint.*not a Hallo net\.pth.*hallo/net\.pth"):
        load_net(path)


def test_motion_module_is_recognised(tmp_path: Path) -> None:
    state = {"down_blocks.0.motion_modules.0.temporal_transformer.norm.weight": torch.zeros(8)}
    path = tmp_path / "net.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="is an AnimateDiff motion module"):
        load_net(path)


def test_missing_keys_are_listed(tmp_path: Path, tiny_state) -> None:
    state = dict(tiny_state)
    dropped = [k for k in state if k.startswith("denoising_unet.up_blocks.2.audio_modules.0.transformer_blocks.0.")][:4]
    for k in dropped:
        del state[k]
    path = _save_pth(state, tmp_path / "net.pth")
    with pytest.raises(CheckpointError, match=r"4 missing keys, e\.g\. denoising_unet\.up_blocks\.2\.audio_modules"):
        load_net(path, config=tiny_config())


def test_unexpected_keys_are_listed(tmp_path: Path, tiny_state) -> None:
    state = dict(tiny_state)
    state["denoising_unet.extra_head.weight"] = torch.zeros(3)
    path = _save_pth(state, tmp_path / "net.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected key, e\.g\. denoising_unet\.extra_head\.weight"):
        load_net(path, config=tiny_config())


def test_wrong_shapes_are_listed(tmp_path: Path, tiny_state) -> None:
    state = dict(tiny_state)
    key = "denoising_unet.down_blocks.1.audio_modules.0.proj_in.weight"
    state[key] = torch.zeros(7, *state[key].shape[1:])
    path = _save_pth(state, tmp_path / "net.pth")
    with pytest.raises(CheckpointError, match=r"1 key of the wrong shape, e\.g\. " + key.replace(".", r"\.")):
        load_net(path, config=tiny_config())


def test_config_that_disagrees_with_file(tmp_path: Path, tiny_state) -> None:
    path = _save_pth(tiny_state, tmp_path / "net.pth")
    other = tiny_config().replace(imageproj=tiny_config().imageproj.__class__(tokens=4, cross_attention_dim=48))
    with pytest.raises(CheckpointError, match="has other sizes than the given config"):
        load_net(path, config=other)


class _Exploit:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_needing_code_execution_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-was-run"
    path = tmp_path / "net.pth"
    with open(path, "wb") as f:
        pickle.dump({"denoising_unet.conv_in.weight": _Exploit(str(marker))}, f, protocol=2)
    with pytest.raises(CheckpointError, match="needs to run code to load, so it was refused"):
        load_net(path)
    assert not marker.exists()


def test_zip_pickle_with_foreign_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-was-run"
    path = tmp_path / "net.pth"
    torch.save({"denoising_unet.conv_in.weight": _Exploit(str(marker))}, path)
    with pytest.raises(CheckpointError, match="needs to run code to load, so it was refused"):
        load_net(path)
    assert not marker.exists()


def test_not_a_tensor_dict(tmp_path: Path) -> None:
    path = _save_pth({"epoch": 3, "step": 10}, tmp_path / "net.pth")
    with pytest.raises(CheckpointError, match="does not hold a flat dict of tensors"):
        load_net(path)
