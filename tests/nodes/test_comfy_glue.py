"""nodes/comfy_glue.py against the stand-in ComfyUI: model folders, devices, ModelPatcher loading, progress, Cancel."""

from __future__ import annotations

import importlib
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.nodes.comfy_env import comfy_env


def _net_folder(path):
    (path / "hallo").mkdir(parents=True)
    (path / "hallo" / "net.pth").write_bytes(b"")
    return path


def test_model_folder_combo_lists_the_roots_and_their_model_subfolders(tmp_path) -> None:
    models = tmp_path / "models"
    _net_folder(models / "hallo" / "tiny")
    (models / "hallo" / "notes").mkdir()
    extra = _net_folder(tmp_path / "nas" / "hallo")
    with comfy_env(models, extra_hallo_paths=[extra]) as env:
        glue = env.module("nodes.comfy_glue")
        folders = glue.model_folders()
        # the yaml path comes first and keeps the short name; ours is told apart by its full path
        assert folders == {"hallo": extra, str(models / "hallo"): models / "hallo",
                           f"{models / 'hallo'}/tiny": models / "hallo" / "tiny"}
        assert glue.model_folder_path("hallo") == extra


def test_an_empty_models_folder_still_offers_models_hallo(comfy) -> None:
    glue = comfy.module("nodes.comfy_glue")
    assert glue.model_folders() == {"hallo": comfy.models_dir / "hallo"}
    schema = comfy.nodes()["HalloModelLoader"].GET_SCHEMA()
    assert schema.inputs[0].options == ["hallo"] and schema.inputs[0].default == "hallo"


def test_precision_auto_follows_comfyui(comfy) -> None:
    glue, mm = comfy.module("nodes.comfy_glue"), comfy.mm
    gpu = torch.device("cuda", 0)
    assert glue.choose_dtype("auto", torch.device("cpu")) == torch.float32
    mm.fp16_supported, mm.bf16_supported = True, True
    assert glue.choose_dtype("auto", gpu) == torch.float16
    assert glue.choose_dtype("auto", gpu, half="bf16") == torch.bfloat16  # a family trained in bf16 (Hallo3)
    mm.fp16_supported = False
    assert glue.choose_dtype("auto", gpu) == torch.bfloat16
    assert (glue.choose_dtype("fp32", gpu) == torch.float32
            and glue.choose_dtype("bf16", torch.device("cpu")) == torch.bfloat16)
    assert glue.choose_devices("cpu") == (torch.device("cpu"), torch.device("cpu"))
    mm.torch_device = gpu
    assert glue.choose_devices("auto") == (gpu, torch.device("cpu"))


def test_every_network_is_a_comfyui_model_loaded_through_load_models_gpu(comfy_with_models) -> None:
    env = comfy_with_models
    glue, mm = env.module("nodes.comfy_glue"), env.mm
    pipeline = glue.load_pipeline(env.models_dir / "hallo", "auto", "auto", "auto")
    placement = pipeline.placement
    assert isinstance(placement, glue.ComfyPlacement) and pipeline.dtype == torch.float32
    patchers = placement.patchers
    assert all(type(p.model).__name__ == "HalloModelPart" for p in patchers)  # the name ComfyUI logs
    wrapped = [list(p.model.parts) for p in patchers]
    net = pipeline.net
    assert [pipeline.codec.vae] in wrapped and [net.reference_unet] in wrapped
    core = next(parts for parts in wrapped if net.denoising_unet in parts)
    assert set(map(id, core)) == {id(m) for m in net.children()} - {id(net.reference_unet)}
    assert all(p.model.device == torch.device("cpu") for p in patchers)  # waiting on the offload device

    mm.load_calls.clear()
    with placement.use(pipeline.codec.vae):
        pass
    assert [c["models"] for c in mm.load_calls] == [[placement._patchers[id(pipeline.codec.vae)]]]
    assert mm.load_calls[0]["force_full_load"] is True
    mm.load_calls.clear()
    with placement.computing(memory_required=123):
        with placement.use(pipeline.codec.vae, net.reference_unet):
            pass
    core_patcher = placement._patchers[id(net.denoising_unet)]
    assert mm.load_calls[0]["models"] == [core_patcher] and mm.load_calls[0]["memory_required"] == 123
    assert core_patcher in mm.load_calls[1]["models"] and len(mm.load_calls[1]["models"]) == 3
    assert all(p.detached == 0 for p in patchers)


def test_low_vram_sends_the_vae_and_referencenet_back_after_each_use(comfy_with_models) -> None:
    env = comfy_with_models
    glue = env.module("nodes.comfy_glue")
    pipeline = glue.load_pipeline(env.models_dir / "hallo", "hallo", "fp32", "low_vram")
    placement = pipeline.placement
    with placement.computing():
        with placement.use(pipeline.codec.vae):
            pass
    assert placement._patchers[id(pipeline.codec.vae)].detached == 1
    assert placement._patchers[id(pipeline.net.denoising_unet)].detached == 0


def test_progress_bar_counts_every_step_of_every_clip(comfy) -> None:
    glue = comfy.module("nodes.comfy_glue")
    Progress = comfy.module("hallo_pipeline.hallo.sampling.clip_loop").Progress
    seen = []
    sys.modules["comfy.utils"].set_progress_bar_global_hook(lambda v, t, preview, node_id=None: seen.append((v, t)))
    report = glue.ProgressReporter()
    for done in range(1, 7):
        report(Progress(clip=(done - 1) // 3, clips=2, step=(done - 1) % 3 + 1, steps=3, done=done, total=6))
    assert seen == [(k, 6) for k in range(1, 7)]


def test_cancel_raises_comfyuis_interrupt(comfy) -> None:
    glue, mm = comfy.module("nodes.comfy_glue"), comfy.mm
    assert glue.cancel_check() is False
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        glue.cancel_check()


def test_outputs_go_to_the_intermediate_device_and_video_carries_frames_audio_rate(comfy) -> None:
    glue = comfy.module("nodes.comfy_glue")
    images = torch.rand(4, 8, 8, 3)
    audio = {"waveform": torch.zeros(1, 1, 100), "sample_rate": 16000}
    video = glue.make_video(images, audio, 25.0)
    components = video.get_components()
    assert components.images is images and components.audio is audio and components.frame_rate == Fraction(25)
    assert glue.make_video(images, None, 29.97).get_components().frame_rate == Fraction(2997, 100)
    assert glue.to_output(images).device == torch.device("cpu")


def _preview_method(name: str) -> None:
    cli = importlib.import_module("comfy.cli_args")
    cli.args.preview_method = cli.LatentPreviewMethod(name)


def _steps(comfy, previews, total=4, preview=None):
    """Report `total` steps of one clip; returns what the progress hook received per step."""
    glue = comfy.module("nodes.comfy_glue")
    Progress = comfy.module("hallo_pipeline.progress").Progress
    seen = []
    sys.modules["comfy.utils"].set_progress_bar_global_hook(
        lambda v, t, image, node_id=None: seen.append((v, image)))
    report = glue.ProgressReporter(previews)
    for done in range(1, total + 1):
        report(Progress(0, 1, done, total, done, total, preview=preview))
    return seen


def test_preview_method_none_does_no_preview_work(comfy) -> None:
    glue, latent_preview = comfy.module("nodes.comfy_glue"), __import__("latent_preview")
    _preview_method("none")

    def never():
        raise AssertionError("a preview was built although the preview method is none")

    assert glue.LivePreviews.for_this_run() is None
    seen = _steps(comfy, None, preview=never)
    assert [image for _, image in seen] == [None] * 4 and latent_preview.asked == []


@pytest.mark.parametrize("method", ["auto", "latent2rgb", "taesd"])
def test_hallo_previews_go_through_comfyuis_previewer_for_sd15_latents(comfy, method) -> None:
    glue, latent_preview = comfy.module("nodes.comfy_glue"), __import__("latent_preview")
    LatentPreview = comfy.module("hallo_pipeline.latent_preview").LatentPreview
    _preview_method(method)
    latents = torch.randn(5, 4, 6, 7)  # frames first
    previews = glue.LivePreviews.for_this_run()
    previews.share = float("inf")  # no budget: a preview at every step
    seen = _steps(comfy, previews, preview=lambda: LatentPreview(latents, "sd15"))
    ((asked, fmt),) = latent_preview.asked  # chosen once per run, by ComfyUI, for SD 1.5 latents
    assert asked == method and type(fmt).__name__ == "SD15"
    assert [(value, image[0], image[1].size) for value, image in seen] == [(k, "JPEG", (7, 6)) for k in range(1, 5)]
    previewer = previews.previewer(None, None)
    assert len(previewer.decoded) == 4 and torch.equal(previewer.decoded[0], latents[2][None])  # the middle frame


def test_hallo3_previews_use_the_fitted_colours_and_say_there_is_no_taesd(comfy, caplog) -> None:
    glue = comfy.module("nodes.comfy_glue")
    lp = comfy.module("hallo_pipeline.latent_preview")
    _preview_method("taesd")
    g = torch.Generator().manual_seed(0)
    rgb = lp.LatentRGB(torch.randn(16, 3, generator=g), torch.randn(3, generator=g))
    latents = torch.randn(3, 16, 6, 9, generator=g)
    previews = glue.LivePreviews.for_this_run()
    previews.share = float("inf")
    with caplog.at_level("INFO"):
        seen = _steps(comfy, previews, total=2, preview=lambda: lp.LatentPreview(latents, "cogvideox", rgb))
    assert "no TAESD decoder for cogvideox latents" in caplog.text
    image = torch.tensor(np.asarray(seen[0][1][1]), dtype=torch.float32) / 255
    torch.testing.assert_close(image, ((rgb(latents[1]).movedim(0, -1) + 1) / 2).clamp(0, 1), rtol=0, atol=0.5 / 255)
    assert __import__("latent_preview").asked == []  # ComfyUI's own choice knows no CogVideoX colours


def test_latents_without_a_previewer_are_asked_for_once(comfy, caplog) -> None:
    glue = comfy.module("nodes.comfy_glue")
    LatentPreview = comfy.module("hallo_pipeline.latent_preview").LatentPreview
    _preview_method("latent2rgb")
    asked = []
    previews = glue.LivePreviews.for_this_run()
    previews.share = float("inf")
    with caplog.at_level("INFO"):
        seen = _steps(comfy, previews, preview=lambda: asked.append(1) or LatentPreview(torch.zeros(1, 16, 2, 2),
                                                                                         "cogvideox"))
    assert len(asked) == 1 and [image for _, image in seen] == [None] * 4
    assert "no preview colours for cogvideox latents" in caplog.text


@pytest.mark.parametrize("ours", [True, False], ids=["our-cost", "the-servers-cost"])
def test_previews_take_at_most_their_share_of_the_sampling_time(comfy, ours) -> None:
    """A fake clock: each step takes 1 s, each preview 0.25 s (our decode, or the server's resize and encode,
    timed once and charged to each); with a 2 % share, a preview every ~13 steps."""
    glue = comfy.module("nodes.comfy_glue")
    LatentPreview = comfy.module("hallo_pipeline.latent_preview").LatentPreview
    _preview_method("latent2rgb")
    now = [0.0]
    previews = glue.LivePreviews("latent2rgb", share=0.02, clock=lambda: now[0])
    timings = []
    previews._time_sending = lambda image: timings.append(image) or (0.0 if ours else 0.25)

    def preview():
        now[0] += 0.25 if ours else 0.0
        return LatentPreview(torch.zeros(1, 4, 2, 2), "sd15")

    report = glue.ProgressReporter(previews)
    Progress = comfy.module("hallo_pipeline.progress").Progress
    shown = []
    sys.modules["comfy.utils"].set_progress_bar_global_hook(
        lambda v, t, image, node_id=None: shown.append(image is not None))
    for done in range(1, 201):
        now[0] += 1.0
        report(Progress(0, 1, done, 200, done, 200, preview=preview))
    assert shown[0] and len(timings) == 1  # the first step shows one at once; the sending is timed once
    assert previews.count == sum(shown) and 10 <= previews.count <= 20
    assert previews.spent <= 0.02 * now[0]  # each preview made only where it fits in the share
