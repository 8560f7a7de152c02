"""The nodes on a tiny Hallo3 model folder in the stand-in ComfyUI, as a user wires them: loader, face mask, audio
embed, reference encode, sampler (prompt, progress, Cancel), video stitch and paste back; the Hallo-only inputs
refused by name; the frames equal to the command line's; the example workflow end to end."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch

from tests.conftest import astronaut
from tests.media import write_wav
from tests.nodes.comfy_env import REPO, comfy_env
from tests.nodes.conftest import comfy_over
from tests.nodes.workflow_run import run_workflow

PHOTO = dict(top=0, left=64, height=512, width=384)  # a 3:4 window of the astronaut around her face
PROMPT = "An astronaut is talking to the camera."


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_hallo3_folder):
    with comfy_over(tmp_path_factory, tiny_hallo3_folder) as env:
        yield env


@pytest.fixture(scope="module")
def working_size(pipeline) -> tuple[int, int]:
    """(H, W) of the tiny weights, from the folder's own config (never a constant here)."""
    return tuple(pipeline.generator.config.segment.image_size)


def _image(**window) -> torch.Tensor:
    return torch.from_numpy(astronaut(**window)).float().div(255)[None]


def _face_mask(run, pipeline, **overrides):
    inputs = dict(pipeline=pipeline, image=_image(**PHOTO), image_size=512, face_expand_ratio=1.2,
                  multiple_faces="error", allow_missing_identity=False, framing="crop", crop_scale=2.3)
    return run("HalloFaceMask", **{**inputs, **overrides})


@pytest.fixture(scope="module")
def face_outputs(run, pipeline):
    return _face_mask(run, pipeline)


def _speech(seconds: float, rate: int = 16000) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * math.pi * 180 * t) * (1 + torch.sin(2 * math.pi * 3 * t))
    return {"waveform": torch.stack([wave, 0.5 * wave])[None], "sample_rate": rate}


@pytest.fixture(scope="module")
def embedded(run, pipeline):
    return run("HalloAudioEmbed", pipeline=pipeline, audio=_speech(1.0), separate_vocals=False, mode="auto",
               clip_length=16)


def _sample(run, pipeline, reference, audio, **overrides):
    inputs = dict(pipeline=pipeline, reference=reference, audio=audio, pose_weight=1.0, face_weight=1.0,
                  lip_weight=1.0, steps=2, cfg=3.5, seed=5, mode="auto", start_frame=0, end_frame=0, prompt=PROMPT)
    (segment,) = run("HalloSampler", **{**inputs, **overrides})
    return segment


def test_the_loader_takes_a_hallo3_folder(pipeline) -> None:
    assert pipeline.variant == "hallo3"
    assert pipeline.dtype == torch.float32  # auto on the CPU; bf16 on a GPU that has it (test_comfy_glue)


def test_the_face_mask_shows_what_hallo3_sees(face_outputs, working_size) -> None:
    face, reference, pose, face_mask, lip, region, crop = face_outputs
    height, width = working_size
    assert reference.shape == (1, height, width, 3)
    for mask in (pose, face_mask, lip, region):
        assert mask.shape == (1, height, width)
    # Hallo3 has no per-region audio strengths: nothing to show but the face box it is told about.
    assert pose.max() == face_mask.max() == lip.max() == 0
    assert 0.02 < region.mean() < 0.6 and set(region.unique().tolist()) <= {0.0, 1.0}
    assert abs(crop.shape[2] / crop.shape[1] - width / height) < 0.02  # the crop has the working aspect


def test_the_audio_embed_gives_the_frame_count_and_the_audio(embedded) -> None:
    hallo_audio, frame_count, used = embedded
    assert frame_count == hallo_audio.frames == 25
    assert used["sample_rate"] == 16000 and used["waveform"].shape == (1, 2, 16000)


@pytest.mark.parametrize("node, overrides, input_name", [
    ("HalloFaceMask", {"image_size": 256}, "image_size"),
    ("HalloAudioEmbed", {"clip_length": 8}, "clip_length"),
    ("HalloAudioEmbed", {"mode": "hallo2"}, "mode"),
    ("HalloSampler", {"lip_weight": 0.5}, "lip_weight"),
    ("HalloSampler", {"mode": "hallo"}, "mode"),
    ("HalloSampler", {"start_frame": 47}, "start_frame"),
    ("HalloSampler", {"end_frame": 10}, "end_frame"),
])
def test_what_hallo3_cannot_honour_is_refused_by_name(run, pipeline, face_outputs, embedded, node, overrides,
                                                      input_name) -> None:
    errors = run.env.module("hallo_pipeline.errors")
    with pytest.raises(errors.InputError, match=f"{node} input '{input_name}'"):
        if node == "HalloFaceMask":
            _face_mask(run, pipeline, **overrides)
        elif node == "HalloAudioEmbed":
            run(node, pipeline=pipeline, audio=_speech(0.5), separate_vocals=False,
                **{"mode": "auto", "clip_length": 16, **overrides})
        else:
            (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
            _sample(run, pipeline, reference, embedded[0], **overrides)


def test_a_segment_plan_is_refused_by_name_before_any_step(run, pipeline, face_outputs, embedded) -> None:
    (plan,) = run("HalloSegmentPlan", hallo_audio=embedded[0], segments=1, overlap_clips=0)
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
    errors = run.env.module("hallo_pipeline.errors")
    with pytest.raises(errors.InputError, match="HalloSampler input 'plan': .*Hallo and Hallo2 weights only"):
        _sample(run, pipeline, reference, embedded[0], plan=plan)


def test_sampler_stitch_and_paste_back_make_the_photo_talk(run, pipeline, face_outputs, embedded,
                                                           working_size) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
    hallo_audio, _, used = embedded
    stride = pipeline.generator.config.dit.num_frames - pipeline.generator.config.segment.n_motion_frame
    segments = math.ceil(25 / stride)
    seen = []
    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        segment = _sample(run, pipeline, reference, hallo_audio)
    finally:
        utils.set_progress_bar_global_hook(None)
    assert seen == [(i, 2 * segments) for i in range(1, 2 * segments + 1)]  # every step of every segment
    height, width = working_size
    assert segment.frames.shape == (25, 3, height, width) and segment.start_frame == 0
    images, audio_cut, video, fps = run("HalloVideoStitch", frames=segment, audio=used, fps=25.0)
    assert images.shape == (25, height, width, 3) and audio_cut["waveform"].shape[-1] == 16000
    pasted, fps_out = run("HalloPasteBack", images=images, face=face_outputs[0], feather=0.05, color_match=True,
                          max_side=0, fps=fps)
    assert fps_out == fps == 25.0
    assert pasted.shape == (25, PHOTO["height"], PHOTO["width"], 3)  # the whole photo, at its size
    photo = _image(**PHOTO)[0]
    x0, y0, x1, y1 = face_outputs[0].framing.visible
    outside = torch.ones(PHOTO["height"], PHOTO["width"], dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    if outside.any():
        assert (pasted[3][outside] - photo[outside]).abs().max() < 1.5 / 255  # untouched outside the crop


@pytest.mark.slow  # a whole Hallo3 sampler run (~10 s); the glue's own tests cover previews in the default run
def test_the_sampler_shows_previews_in_colours_fitted_to_the_portrait(run, pipeline, face_outputs, embedded,
                                                                     working_size) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
    cli = importlib.import_module("comfy.cli_args")
    seen = []
    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, preview)))
    try:
        cli.args.preview_method = cli.LatentPreviewMethod.TAESD  # none for CogVideoX: the fitted colours instead
        _sample(run, pipeline, reference, embedded[0])
    finally:
        utils.set_progress_bar_global_hook(None)
        cli.args.preview_method = cli.LatentPreviewMethod.NoPreviews
    height, width = (side // pipeline.generator.config.segment.vae_factor for side in working_size)
    assert [value for value, _ in seen][:2] == [1, 2] and seen[0][1] is not None  # the first step shows one
    kind, image, _ = seen[0][1]
    assert kind == "JPEG" and image.size == (width, height)
    assert __import__("latent_preview").asked == []  # not ComfyUI's choice: it has no colours for CogVideoX


def test_cancel_stops_inside_a_segment(run, pipeline, face_outputs, embedded) -> None:
    env = run.env
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append(value)
        env.mm.interrupt_current_processing()  # the user presses Cancel during the first step

    utils = env.module("nodes.comfy_glue").comfy.utils
    utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(env.mm.InterruptProcessingException):
            _sample(run, pipeline, reference, embedded[0], steps=3)
    finally:
        utils.set_progress_bar_global_hook(None)
    assert seen == [1]


@pytest.mark.slow  # about 15 s: a whole command-line run beside the nodes'
def test_the_nodes_give_the_command_lines_frames(run, pipeline, tmp_path, monkeypatch) -> None:
    """Face Mask (stretch) -> Sampler gives, frame for frame, what `animate` writes for the same inputs."""
    env = run.env
    window = dict(top=40, left=0, height=340, width=510)
    face, *_ = _face_mask(run, pipeline, image=_image(**window), framing="stretch")
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face)
    speech = _speech(1.0)
    hallo_audio, _, _ = run("HalloAudioEmbed", pipeline=pipeline, audio=speech, separate_vocals=False, mode="auto",
                            clip_length=16)
    segment = _sample(run, pipeline, reference, hallo_audio, steps=1, seed=9)

    written = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, frames):
            written.append(torch.as_tensor(frames))

    monkeypatch.setattr(env.module("hallo_pipeline.video"), "VideoWriter", Recorder)
    settings = pipeline.settings(steps=1, seed=9)
    pipeline.animate(astronaut(**window), (speech["waveform"][0], 16000), tmp_path / "cli.mp4",
                     settings, prompt=PROMPT, framing="stretch")
    cli = torch.cat(written).permute(0, 3, 1, 2).float().div(255)
    assert torch.equal(segment.frames, cli)


def test_the_example_workflow_runs(tmp_path, tiny_hallo3_folder) -> None:
    """workflows/hallo3_portrait_to_video.json with a 3:4 photo and one second of speech: an mp4 of the photo's
    size with its sound."""
    from PIL import Image

    from hallo_pipeline.video import read_video_info

    inputs = tmp_path / "input"
    inputs.mkdir()
    Image.fromarray(astronaut(**PHOTO)).save(inputs / "photo.png")
    write_wav(inputs / "speech.wav", 1.0)
    workflow = json.loads((REPO / "workflows" / "hallo3_portrait_to_video.json").read_text())
    ids = {n["type"]: n["id"] for n in workflow["nodes"]}
    models = tmp_path / "models"
    models.mkdir()
    (models / "hallo").symlink_to(tiny_hallo3_folder, target_is_directory=True)
    with comfy_env(models) as env:
        core = run_workflow(env, workflow, inputs, tmp_path, overrides={ids["HalloSampler"]: {"steps": 2}})
    (video,) = core.saved
    info = read_video_info(video)
    assert (info["video_codec"], info["audio_codec"], info["fps"]) == ("h264", "aac", 25)
    assert (info["width"], info["height"], info["frames"]) == (PHOTO["width"], PHOTO["height"], 25)
    assert abs(info["audio_seconds"] - 1.0) < 0.05


def test_each_hallo3_network_is_a_comfyui_model_loaded_for_its_own_phase(run, pipeline, face_outputs,
                                                                           embedded) -> None:
    """T5, both DiTs and the VAE are one ComfyUI model each; every phase loads its own network alone and tells
    ComfyUI what it needs beside the weights: at least a DiT step's (the sampler node's reserve), the decode
    more (so ComfyUI offloads the main DiT for it)."""
    mm = run.env.mm
    placement, generator = pipeline.placement, pipeline.generator
    wrapped = {tuple(map(id, p.model.parts)) for p in placement.patchers}
    networks = {"t5": generator.text_encoder.model, "reference": generator.nets.reference,
                "main": generator.nets.main, "vae": generator.vae.model}
    assert {(id(m),) for m in networks.values()} <= wrapped
    name_of = {placement._patchers[id(m)]: name for name, m in networks.items()}
    (reference,) = run("HalloReferenceEncode", pipeline=pipeline, face=face_outputs[0])
    mm.load_calls.clear()
    _sample(run, pipeline, reference, embedded[0], steps=1, prompt="A new prompt for T5")
    loads = [([name_of.get(m) for m in call["models"]], call["memory_required"]) for call in mm.load_calls]
    assert all(len(names) == 1 for names, _ in loads), loads
    assert [names[0] for names, _ in loads[:5]] == ["t5", "vae", "reference", "main", "vae"]
    step = pipeline.step_memory(reference, embedded[0])
    assert all(memory >= step > 0 for _, memory in loads)
    assert loads[4][1] == max(memory for _, memory in loads) > step


def test_the_loaders_low_vram_is_hallo3s_low_vram(run) -> None:
    """device low_vram: the main DiT's matrices in fp8 and half its layers streamed from the host (the decode
    in tiles too; `Hallo3Family.load`)."""
    (pipe,) = run("HalloModelLoader", model_folder="hallo", variant="hallo3", precision="fp32", device="low_vram",
                  attention="auto")
    dtypes = {p.dtype for p in pipe.generator.nets.main.transformer.layers.parameters()}
    assert torch.float8_e4m3fn in dtypes


def test_the_loaders_fp8_weight_dtype_is_hallo3s_fp8_alone(run) -> None:
    """weight_dtype fp8_e4m3fn without low_vram: the main DiT's matrices in fp8, nothing streamed, no tiles."""
    (pipe,) = run("HalloModelLoader", model_folder="hallo", variant="hallo3", precision="fp32", device="cpu",
                  attention="auto", compile=False, weight_dtype="fp8_e4m3fn")
    main = pipe.generator.nets.main
    assert torch.float8_e4m3fn in {p.dtype for p in main.transformer.layers.parameters()}
    assert not any(hasattr(m, "_hallo_host_copy") for m in main.modules())
    assert pipe.generator.memory.fp8 and not pipe.generator.memory.tiled_decode
