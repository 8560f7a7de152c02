"""benchmarks/distributed_loopback.py: the prompts it sends (fast), and the whole loopback run where a ComfyUI
checkout and a ComfyUI-Distributed checkout are present (slow; skipped in CI, which has neither)."""

from __future__ import annotations

import json

import pytest

from benchmarks import distributed_loopback as loopback
from tests.nodes.comfy_env import REPO


def _template() -> dict:
    """The shipped workflow in API format, as the harness converts it (the ids the script relies on)."""
    return {
        loopback.LOAD_IMAGE: {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        loopback.LOAD_AUDIO: {"class_type": "LoadAudio", "inputs": {"audio": "speech.wav"}},
        loopback.FACE_MASK: {"class_type": "HalloFaceMask", "inputs": {"image_size": 512}},
        loopback.SAMPLER: {"class_type": "HalloSampler", "inputs": {"steps": 40, "seed": 42, "plan": ["13", 0],
                                                                    "segment_index": [loopback.SEED_NODE, 0]}},
        loopback.STITCH: {"class_type": "HalloVideoStitch", "inputs": {"frames": [loopback.SAMPLER, 0]}},
        loopback.SEED_NODE: {"class_type": "DistributedSeed", "inputs": {"seed": 0}},
        loopback.COLLECTOR: {"class_type": "DistributedCollector", "inputs": {"images": [loopback.STITCH, 0]}},
        loopback.JOIN: {"class_type": "HalloSegmentJoin", "inputs": {"segment_images": [loopback.COLLECTOR, 0]}},
        loopback.PASTE: {"class_type": "HalloPasteBack", "inputs": {"images": [loopback.JOIN, 0]}},
        "11": {"class_type": "SaveVideo", "inputs": {"filename_prefix": "video/Hallo_distributed"}},
    }


def test_the_ids_are_the_shipped_workflows() -> None:
    workflow = json.loads((REPO / "workflows" / "hallo_distributed_long_video.json").read_text())
    types = {str(n["id"]): n["type"] for n in workflow["nodes"]}
    for node_id, node in _template().items():
        assert types[node_id] == node["class_type"]


def test_one_instance_renders_both_segments_and_batches_them_in_plan_order() -> None:
    args = loopback._parse(["--steps", "2", "--size", "128"])
    prompt = loopback.one_instance_prompt(loopback.set_run_inputs(_template(), args, seed=7))
    assert loopback.SEED_NODE not in prompt and loopback.COLLECTOR not in prompt
    samplers = {k: n["inputs"] for k, n in prompt.items() if n["class_type"] == "HalloSampler"}
    assert sorted(i["segment_index"] for i in samplers.values()) == [0, 1]
    assert all((i["steps"], i["seed"]) == (2, 7) for i in samplers.values())
    batch = prompt[prompt[loopback.JOIN]["inputs"]["segment_images"][0]]
    assert batch["class_type"] == "ImageBatch"
    first, second = (prompt[batch["inputs"][k][0]]["inputs"]["frames"][0] for k in ("image1", "image2"))
    assert (samplers[first]["segment_index"], samplers[second]["segment_index"]) == (0, 1)
    distributed = loopback.distributed_prompt(loopback.set_run_inputs(_template(), args, seed=7))
    assert distributed[loopback.SAMPLER]["inputs"]["segment_index"] == [loopback.SEED_NODE, 0]
    saved = {n["inputs"]["filename_prefix"]: n["inputs"]["images"] for n in distributed.values()
             if n["class_type"] == "SaveImage"}
    assert saved == {"loopback/collected": [loopback.COLLECTOR, 0], "loopback/final": [loopback.PASTE, 0]}


@pytest.mark.slow
def test_two_comfyuis_through_comfyui_distributed_give_the_one_instance_and_cli_frames(tmp_path) -> None:
    args = loopback._parse(["--seconds", "3", "--steps", "1", "--size", "128"])
    missing = [p for p in (args.comfy / "main.py", args.python, args.distributed / "__init__.py", loopback.HARNESS)
               if not p.exists()]
    if missing:
        pytest.skip(f"no ComfyUI / ComfyUI-Distributed checkout here ({', '.join(map(str, missing))})")
    figures = loopback.run(args, tmp_path)
    assert figures["passed"], figures
