"""HalloModelLoader: loading a model folder, and what a wrong or empty folder tells the user."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.hub_server import hub
from tests.nodes.comfy_env import comfy_env


def test_loads_the_tiny_models_on_comfyuis_devices(comfy_with_models) -> None:
    env = comfy_with_models
    (pipeline,) = env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="fp32",
                                                          device="cpu", attention="auto").args
    assert pipeline.variant == "hallo" and pipeline.dtype == torch.float32 and pipeline.device == torch.device("cpu")
    assert isinstance(pipeline.placement, env.module("nodes.comfy_glue").ComfyPlacement)


def test_prompts_saved_before_the_attention_input_still_load(comfy_with_models) -> None:
    loader = comfy_with_models.nodes()["HalloModelLoader"]
    assert loader.define_schema().inputs[-1].optional
    (pipeline,) = loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu").args
    assert pipeline.variant == "hallo"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d.mkdir(parents=True),
         r"HalloModelLoader input 'model_folder': no Hallo weights found in model folder"),
        (lambda d: None, r"HalloModelLoader input 'model_folder': model folder .* does not exist"),
    ],
)
def test_loader_errors_name_the_model_folder_input(tmp_path, make, message) -> None:
    make(tmp_path / "models" / "hallo")
    with comfy_env(tmp_path / "models") as env:
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError, match=message):
            env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto",
                                                    device="auto", attention="auto")


def test_loader_error_for_a_folder_without_vae(tmp_path, tiny_models) -> None:
    (tmp_path / "models" / "hallo").mkdir(parents=True)
    (tmp_path / "models" / "hallo" / "hallo").symlink_to(tiny_models / "hallo", target_is_directory=True)
    with comfy_env(tmp_path / "models") as env:
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError,
                           match=r"HalloModelLoader input 'model_folder': model folder .* is incomplete; "
                           r"missing: .*sd-vae-ft-mse.* in the folder "):
            env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto",
                                                    device="auto", attention="auto")


def test_an_attention_kernel_that_cannot_run_names_the_attention_input(comfy_with_models) -> None:
    env = comfy_with_models
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloModelLoader input 'attention': attention 'flash' runs only on a CUDA GPU, but the "
                             r"device is cpu; use attention 'sdpa'"):
        env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="fp16", device="cpu",
                                                attention="flash")


def test_attention_is_chosen_for_comfyuis_device_and_precision(comfy, monkeypatch) -> None:
    from tests import fake_attention

    glue, mm = comfy.module("nodes.comfy_glue"), comfy.mm
    calls = fake_attention.install(monkeypatch, "sage")
    mm.torch_device, mm.fp16_supported = torch.device("cuda", 0), True  # choosing computes nothing
    kernel = glue.attention_kernel("sage", "auto", "auto")
    q = torch.randn(1, 2, 3, 8)
    torch.testing.assert_close(kernel(q, q, q), torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert calls == [((1, 3, 2, 8), (1, 3, 2, 8))]
    with pytest.raises(comfy.module("hallo_pipeline.errors").InputError, match="the precision is fp32"):
        glue.attention_kernel("sage", "fp32", "auto")


def test_the_variant_and_mode_options_come_from_the_family_registry(tmp_path, monkeypatch) -> None:
    with comfy_env(tmp_path / "models") as env:
        families = env.module("hallo_pipeline.families")

        class Fake:
            name, variants, modes, flags = "Fake", {"fake": "fake/weights.bin"}, ("fake_loop",), {}
            text_prompt, default_prompt = True, "a fake talking"

        monkeypatch.setattr(families, "FAMILIES", [*families.FAMILIES, Fake()])
        nodes = env.nodes()
        loader = {i.id: i for i in nodes["HalloModelLoader"].define_schema().inputs}
        assert loader["variant"].options == ["auto", "hallo", "hallo2", "hallo3", "fake"]
        assert "fake: fake/weights.bin" in loader["variant"].tooltip
        for node in ("HalloSampler", "HalloAudioEmbed"):
            mode = {i.id: i for i in nodes[node].define_schema().inputs}["mode"]
            assert mode.options == ["auto", "hallo", "hallo2", "fake_loop"]
        prompt = {i.id: i for i in nodes["HalloSampler"].define_schema().inputs}["prompt"]
        assert 'Fake, empty: "a fake talking"' in prompt.tooltip and "Hallo3, empty:" in prompt.tooltip


def test_a_hallo3_folder_is_listed_and_an_incomplete_one_says_what_to_fetch(tmp_path) -> None:
    folder = tmp_path / "models" / "hallo" / "h3"
    (folder / "hallo3" / "1").mkdir(parents=True)
    (folder / "hallo3" / "latest").write_text("1")
    (folder / "hallo3" / "1" / "mp_rank_00_model_states.safetensors").write_bytes(b"x")
    with comfy_env(tmp_path / "models") as env:
        loader = env.nodes()["HalloModelLoader"]
        assert "hallo/h3" in {i.id: i for i in loader.define_schema().inputs}["model_folder"].options
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError,
                           match=r"HalloModelLoader input 'model_folder': .*3d-vae\.pt.*download .* --hallo3"):
            loader.execute(model_folder="hallo/h3", variant="auto", precision="auto", device="auto", attention="auto")


def test_compile_reaches_hallos_denoiser_and_hallo3_refuses_it(comfy_with_models, tmp_path) -> None:
    """The loader's optional compile: Hallo's denoising UNet is wrapped by torch.compile (compiled on its first
    step); Hallo3 stops with a message naming the input, before any weights load."""
    loader = comfy_with_models.nodes()["HalloModelLoader"]
    (pipeline,) = loader.execute(model_folder="hallo", variant="hallo", precision="fp32", device="cpu",
                                 attention="auto", compile=True).args
    assert pipeline.net.denoising_unet._compiled_call_impl is not None
    (plain,) = loader.execute(model_folder="hallo", variant="hallo", precision="fp32", device="cpu",
                              attention="auto").args
    assert plain.net.denoising_unet._compiled_call_impl is None
    folder = tmp_path / "models3" / "hallo" / "h3"
    (folder / "hallo3" / "1").mkdir(parents=True)
    (folder / "hallo3" / "latest").write_text("1")
    (folder / "hallo3" / "1" / "mp_rank_00_model_states.safetensors").write_bytes(b"x")
    with comfy_env(tmp_path / "models3") as env:
        with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                           match=r"HalloModelLoader input 'compile': Hallo3 cannot honour compile"):
            env.nodes()["HalloModelLoader"].execute(model_folder="hallo/h3", variant="hallo3", precision="auto",
                                                    device="auto", attention="auto", compile=True)


def _official_layout_from(tiny: Path) -> dict[str, bytes]:
    """The stand-in hub's files: each official file of the Hallo list from the tiny folder, under its repo; the
    antelopev2 files the tiny folder has no stand-in for get placeholder bytes (loading never reads them)."""
    from hallo_pipeline.hallo.download import files

    return {f"{f.repo}/{f.path}": (tiny / f.path).read_bytes() if (tiny / f.path).is_file() else b"placeholder"
            for f in files()}


def test_download_missing_fetches_what_the_folder_lacks_with_comfyuis_progress_bar(
        tmp_path, tiny_models, monkeypatch) -> None:
    folder = tmp_path / "models" / "hallo"
    shutil.copytree(tiny_models, folder, ignore=shutil.ignore_patterns("hallo2"))  # auto would take Hallo2's net
    lacking = ["hallo/net.pth", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"]
    for path in lacking:
        (folder / path).unlink()
    seen = []
    with hub(monkeypatch, _official_layout_from(tiny_models)) as requests, comfy_env(tmp_path / "models") as env:
        loader = env.nodes()["HalloModelLoader"]
        assert [i.id for i in loader.define_schema().inputs][-2:] == ["download_missing", "weight_dtype"]
        with pytest.raises(env.module("hallo_pipeline.errors").CheckpointError, match="'model_folder'"):
            loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu")  # off by default
        assert requests == []
        sys.modules["comfy.utils"].set_progress_bar_global_hook(lambda v, t, preview, node_id=None: seen.append((v, t)))
        (pipeline,) = loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu",
                                     download_missing=True).args
    fetched = {r.removeprefix("GET ").split("/", 2)[2] for r in requests if r.startswith("GET")}
    assert fetched == {*lacking, "face_analysis/models/1k3d68.onnx", "face_analysis/models/2d106det.onnx",
                       "face_analysis/models/genderage.onnx"}
    assert pipeline.variant == "hallo"
    for path in lacking:
        assert (folder / path).read_bytes() == (tiny_models / path).read_bytes()
    done = [v for v, _ in seen]
    assert len(seen) >= len(fetched) and done == sorted(done) and seen[-1][0] == seen[-1][1]


def test_cancel_stops_a_download(tmp_path, tiny_models, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 2**16)  # the tiny net in many chunks
    (tmp_path / "models" / "hallo").mkdir(parents=True)
    with hub(monkeypatch, _official_layout_from(tiny_models)) as requests, comfy_env(tmp_path / "models") as env:
        sys.modules["comfy.utils"].set_progress_bar_global_hook(
            lambda v, t, preview, node_id=None: env.mm.interrupt_current_processing())  # Cancel at the first chunk
        with pytest.raises(env.mm.InterruptProcessingException):
            env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="fp32",
                                                    device="cpu", download_missing=True)
    assert [r for r in requests if r.startswith("GET")] == ["GET fudan-generative-ai/hallo/hallo/net.pth"]
    assert not (tmp_path / "models" / "hallo" / "hallo" / "net.pth").exists()


def test_download_missing_offline_names_the_input(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    (tmp_path / "models" / "hallo").mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with comfy_env(tmp_path / "models") as env:
        with pytest.raises(env.module("hallo_pipeline.errors").HalloError,
                           match=r"HalloModelLoader input 'download_missing': could not download hallo/net.pth from "
                                 r"fudan-generative-ai/hallo .*Check the network"):
            env.nodes()["HalloModelLoader"].execute(model_folder="hallo", variant="auto", precision="auto",
                                                    device="cpu", download_missing=True)


def test_the_model_list_saves_into_the_folder_the_loader_registers(tmp_path) -> None:
    from hallo_pipeline.model_list import MODELS_SUBFOLDER

    with comfy_env(tmp_path / "models") as env:
        assert env.module("nodes.comfy_glue").MODEL_FOLDER_KIND == MODELS_SUBFOLDER


def test_weight_dtype_fp8_stores_the_unets_in_fp8_and_comfyui_sees_the_smaller_model(comfy_with_models) -> None:
    Fp8Weight = comfy_with_models.module("hallo_pipeline.fp8").Fp8Weight  # the pack's own, as ComfyUI imports it
    loader = comfy_with_models.nodes()["HalloModelLoader"]
    loaded = {}
    for weight_dtype in ("default", "fp8_e4m3fn"):
        (pipeline,) = loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu",
                                     attention="auto", compile=False, weight_dtype=weight_dtype).args
        loaded[weight_dtype] = pipeline
    fp8 = loaded["fp8_e4m3fn"]
    assert not any(isinstance(m, Fp8Weight) for m in loaded["default"].net.modules())
    stored = {p.dtype for m in fp8.net.modules() if isinstance(m, Fp8Weight) for p in m.parameters(recurse=False)}
    assert torch.float8_e4m3fn in stored and fp8.dtype == torch.float32

    def model_bytes(pipeline) -> int:  # what ComfyUI's model manager counts for our parts
        return sum(t.nbytes for p in pipeline.placement.patchers for t in p.model.state_dict().values())

    assert model_bytes(fp8) < 0.5 * model_bytes(loaded["default"])


def test_a_weight_dtype_this_pytorch_cannot_store_names_the_weight_dtype_input(comfy_with_models, monkeypatch):
    env = comfy_with_models
    monkeypatch.setattr(env.module("hallo_pipeline.fp8"), "FP8", None)
    loader = env.nodes()["HalloModelLoader"]
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloModelLoader input 'weight_dtype': fp8: this PyTorch .* has no float8_e4m3fn"):
        loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu", weight_dtype="fp8_e4m3fn")
    with pytest.raises(env.module("hallo_pipeline.errors").InputError,
                       match=r"HalloModelLoader input 'weight_dtype': weight_dtype 'fp4' is unknown; use default or "
                             r"fp8_e4m3fn"):
        loader.execute(model_folder="hallo", variant="auto", precision="fp32", device="cpu", weight_dtype="fp4")
