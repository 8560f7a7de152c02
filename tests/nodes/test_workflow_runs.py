"""Workflow (a), portrait + speech -> mp4 with sound, end to end on the tiny model folder."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import PORTRAIT
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


def test_portrait_to_video(tmp_path, tiny_models, input_dir) -> None:
    from hallo_pipeline.video import read_video_info

    workflow = json.loads((REPO / "workflows" / "hallo_portrait_to_video.json").read_text())
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
    info = read_video_info(video)
    assert (info["video_codec"], info["audio_codec"], info["fps"]) == ("h264", "aac", 25)
    assert (info["width"], info["height"], info["frames"]) == (128, 128, 25)  # 1 s of speech at 25 fps
    assert abs(info["audio_seconds"] - 1.0) < 0.05
