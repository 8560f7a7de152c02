"""The example workflows end to end on the tiny model folder: portrait + speech -> mp4 with sound, and a
non-square photo in -> the whole photo, moving, out."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import PORTRAIT, astronaut
from tests.media import write_wav
from tests.nodes.comfy_env import REPO, comfy_env
from tests.nodes.workflow_run import run_workflow


@pytest.fixture
def input_dir(tmp_path):
    """ComfyUI's input folder: the test portrait as face.png and one second of sound as speech.wav."""
    folder = tmp_path / "input"
    folder.mkdir()
    shutil.copy(PORTRAIT, folder / "face.png")
    write_wav(folder / "speech.wav", 1.0)
    return folder


def _run(name, tmp_path, tiny_models, input_dir):
    """Run the workflow at image_size 128 with 2 steps; returns (core stand-ins, the saved video's info)."""
    from hallo_pipeline.video import read_video_info

    workflow = json.loads((REPO / "workflows" / name).read_text())
    ids = {n["type"]: n["id"] for n in workflow["nodes"]}
    models = tmp_path / "models"
    models.mkdir()
    (models / "hallo").symlink_to(tiny_models, target_is_directory=True)
    with comfy_env(models) as env:
        core = run_workflow(env, workflow, input_dir, tmp_path, overrides={
            ids["HalloFaceMask"]: {"image_size": 128},
            ids["HalloSampler"]: {"steps": 2},
        })
    (video,) = core.saved
    return core, read_video_info(video)


def test_portrait_to_video(tmp_path, tiny_models, input_dir) -> None:
    _, info = _run("hallo_portrait_to_video.json", tmp_path, tiny_models, input_dir)
    assert (info["video_codec"], info["audio_codec"], info["fps"]) == ("h264", "aac", 25)
    assert (info["width"], info["height"], info["frames"]) == (128, 128, 25)  # 1 s of speech at 25 fps
    assert abs(info["audio_seconds"] - 1.0) < 0.05


def test_a_photo_in_gives_the_same_photo_out(tmp_path, tiny_models, input_dir) -> None:
    """hallo_photo_paste_back.json: a 3:4 photo (384x512) comes out as a 384x512 video with its sound."""
    from PIL import Image

    Image.fromarray(astronaut(left=64, width=384)).save(input_dir / "photo.png")
    core, info = _run("hallo_photo_paste_back.json", tmp_path, tiny_models, input_dir)
    assert (info["video_codec"], info["audio_codec"], info["fps"]) == ("h264", "aac", 25)
    assert (info["width"], info["height"], info["frames"]) == (384, 512, 25)
    assert abs(info["audio_seconds"] - 1.0) < 0.05
    (crop,) = core.previews  # the square the face was cut from, at the photo's resolution
    assert crop.shape[1] == crop.shape[2] > 128
