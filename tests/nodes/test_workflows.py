"""The example workflows load against our node schemas (widget order, link types) and use only core nodes
besides ours."""

from __future__ import annotations

import json

import pytest

from tests.nodes.comfy_env import REPO
from tests.nodes.workflow_check import check_workflow, spec_from_object_info, to_prompt
from tests.nodes.workflow_layout import overlaps, rect

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


@pytest.fixture
def specs(comfy):
    return {node_id: spec_from_object_info(cls.GET_NODE_INFO_V1()) for node_id, cls in comfy.nodes().items()}


def test_there_are_the_six_examples() -> None:
    assert [p.name for p in WORKFLOWS] == [
        "hallo2_long_audio_upscaled.json", "hallo3_portrait_to_video.json", "hallo_distributed_long_video.json",
        "hallo_masks_and_region_weights.json", "hallo_photo_paste_back.json", "hallo_portrait_to_video.json"]


def test_the_distributed_example_gives_each_participant_a_segment_and_joins_on_the_master(specs) -> None:
    workflow = json.loads((REPO / "workflows" / "hallo_distributed_long_video.json").read_text())
    prompt = to_prompt(workflow, specs)
    ids = {node_type: node_id for node_id, (node_type, _) in prompt.items()}
    inputs = {node_type: prompt[node_id][1] for node_type, node_id in ids.items()}
    # the master renders segment 0, worker k segment k (Distributed Seed adds k to its seed on worker k - 1)
    assert inputs["DistributedSeed"] == {"seed": 0, "control_after_generate": "fixed"}
    sampler, join = inputs["HalloSampler"], inputs["HalloSegmentJoin"]
    assert sampler["segment_index"] == (ids["DistributedSeed"], 0)
    assert sampler["plan"] == join["plan"] == (ids["HalloSegmentPlan"], 0)
    assert inputs["HalloSegmentPlan"]["hallo_audio"] == sampler["audio"]
    # worker side: sampler -> stitch -> collector; master side: collector -> join -> paste back -> video
    assert inputs["HalloVideoStitch"]["frames"] == (ids["HalloSampler"], 0)
    assert inputs["DistributedCollector"]["images"] == (ids["HalloVideoStitch"], 0)
    assert join["segment_images"] == (ids["DistributedCollector"], 0)
    assert inputs["HalloPasteBack"]["images"] == (ids["HalloSegmentJoin"], 0)
    assert inputs["CreateVideo"]["audio"] == (ids["HalloSegmentJoin"], 1)
    assert (sampler["start_frame"], sampler["end_frame"]) == (0, 0) and "previous" not in sampler


def test_the_hallo3_example_loads_hallo3_with_its_defaults_and_pastes_back(specs) -> None:
    workflow = json.loads((REPO / "workflows" / "hallo3_portrait_to_video.json").read_text())
    prompt = to_prompt(workflow, specs)
    by_type = {node_type: inputs for node_type, inputs in prompt.values()}
    assert by_type["HalloModelLoader"]["variant"] == "hallo3"
    sampler = by_type["HalloSampler"]
    assert (sampler["steps"], sampler["cfg"]) == (50, 3.5) and sampler["prompt"].strip()  # the release's
    assert by_type["HalloFaceMask"]["framing"] == "crop"
    assert {"HalloPasteBack", "CreateVideo", "SaveVideo"} <= set(by_type)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_fits_the_schemas(path, specs) -> None:
    workflow = json.loads(path.read_text())
    assert check_workflow(workflow, specs) == []
    types = {n["type"] for n in workflow["nodes"]}
    assert {"HalloModelLoader", "HalloSampler", "HalloVideoStitch", "LoadImage", "LoadAudio", "SaveVideo"} <= types


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_node_covers_another_after_a_run(path) -> None:
    """Title bars, long titles and the previews output nodes grow after a run included (workflow_layout.py)."""
    assert overlaps(json.loads(path.read_text())) == []


def test_the_layout_check_sees_a_long_title_and_a_grown_video_preview() -> None:
    """The two overlaps issue #15 reported, put back: Hallo2's upscale node under its old long title runs over
    Create Video; the masks example's face-box preview where it was sits under the grown Save Video preview."""
    long = _load("hallo2_long_audio_upscaled.json")
    upscale = next(n for n in long["nodes"] if n["type"] == "ImageScale")
    upscale["title"] = "Upscale Image (2x; swap in a model upscaler for a sharper result)"
    assert [p for p in overlaps(long) if "Create Video" in p and "Upscale" in p]
    masks = _load("hallo_masks_and_region_weights.json")
    face_box = next(n for n in masks["nodes"] if n.get("title") == "Face box (FaceLocator)")
    save = next(n for n in masks["nodes"] if n["type"] == "SaveVideo")
    face_box["pos"] = [1500, 720]
    assert rect(save)[3] > save["pos"][1] + save["size"][1]  # the preview grows the node past its saved size
    assert [p for p in overlaps(masks) if "Face box" in p and "Save Video" in p]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_each_workflow_has_its_thumbnail_drawn_from_its_current_graph(path) -> None:
    """workflows/<name>.jpg, what the Templates dialog shows: a small JPEG that matches a fresh drawing
    (`python -m tests.nodes.workflow_thumbnails` redraws them)."""
    import PIL
    from packaging.version import Version
    from PIL import Image, ImageChops, ImageStat, features

    from tests.nodes.workflow_thumbnails import render, thumbnail_path

    shipped = thumbnail_path(path)
    assert shipped.is_file(), f"no thumbnail: python -m tests.nodes.workflow_thumbnails {path.relative_to(REPO)}"
    assert shipped.stat().st_size < 100_000
    with Image.open(shipped) as image:
        assert image.format == "JPEG"
        if not features.check("freetype2") or Version(PIL.__version__) < Version("10.1"):
            pytest.skip("the drawing needs Pillow 10.1 or later with FreeType (its scalable default font)")
        fresh = render(json.loads(path.read_text()), path.stem)
        difference = ImageStat.Stat(ImageChops.difference(image.convert("RGB"), fresh)).mean
    assert max(difference) < 4, f"out of date: python -m tests.nodes.workflow_thumbnails {path.relative_to(REPO)}"


def test_every_thumbnail_belongs_to_a_workflow() -> None:
    assert {p.stem for p in (REPO / "workflows").glob("*.jpg")} <= {p.stem for p in WORKFLOWS}


def test_the_check_notices_a_shifted_widget_and_a_wrong_link(specs) -> None:
    workflow = json.loads((REPO / "workflows" / "hallo_portrait_to_video.json").read_text())
    sampler = next(n for n in workflow["nodes"] if n["type"] == "HalloSampler")
    del sampler["widgets_values"][6]  # the seed's control value
    workflow["links"][0][5] = "IMAGE"
    problems = check_workflow(workflow, specs)
    assert any("HalloSampler" in p and "mode" in p for p in problems)
    assert any(p.startswith("link 1:") for p in problems)


def test_examples_show_what_the_issue_asks(specs) -> None:
    def load(name):
        return {n["id"]: n for n in json.loads((REPO / "workflows" / name).read_text())["nodes"]}

    masks = load("hallo_masks_and_region_weights.json")
    sampler = next(n for n in masks.values() if n["type"] == "HalloSampler")
    assert sampler["widgets_values"][:3] != [1.0, 1.0, 1.0]  # non-default region weights
    assert sum(n["type"] == "MaskPreview" for n in masks.values()) >= 3
    assert any(n["type"] == "PreviewImage" for n in masks.values())
    long = load("hallo2_long_audio_upscaled.json")
    samplers = [n for n in long.values() if n["type"] == "HalloSampler"]
    assert len(samplers) == 2 and all("hallo2" in n["widgets_values"] for n in samplers)
    assert any(i["name"] == "previous" and i["link"] is not None for n in samplers for i in n["inputs"])
    assert any(n["type"] == "ImageScale" for n in long.values())
    loader = next(n for n in long.values() if n["type"] == "HalloModelLoader")
    assert loader["widgets_values"][1] == "hallo2"


def test_the_loaders_newer_widgets_come_last(specs) -> None:
    """attention, then compile: so a loader saved before them keeps its values in place; the frontend gives the
    widgets missing at the end their defaults."""
    assert [name for name, _, _ in specs["HalloModelLoader"].widgets] == [
        "model_folder", "variant", "precision", "device", "attention", "compile", "download_missing", "weight_dtype"]


def _load(name: str) -> dict:
    return json.loads((REPO / "workflows" / name).read_text())


def test_the_photo_workflow_pastes_the_frames_back_into_the_photo(specs) -> None:
    workflow = _load("hallo_photo_paste_back.json")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    prompt = to_prompt(workflow, specs)
    by_type = {node_type: (node_id, inputs) for node_id, (node_type, inputs) in prompt.items()}
    face_mask, stitch = by_type["HalloFaceMask"][0], by_type["HalloVideoStitch"][0]
    assert by_type["HalloFaceMask"][1]["framing"] == "crop"
    paste_id, paste = by_type["HalloPasteBack"]
    assert paste["images"] == (stitch, 0) and paste["face"] == (face_mask, 0)
    assert (paste["feather"], paste["color_match"], paste["max_side"]) == (0.05, True, 0)
    video_id, video = by_type["CreateVideo"]
    assert video == {"fps": 25, "images": (paste_id, 0), "audio": (stitch, 1)}  # the stitch's audio, cut to the frames
    assert by_type["SaveVideo"][1]["video"] == (video_id, 0)
    assert nodes[by_type["LoadImage"][0]]["widgets_values"][0] == "photo.png"
    assert "PreviewImage" in by_type and by_type["PreviewImage"][1]["images"] == (face_mask, 6)  # the crop


def test_the_masks_example_also_shows_the_crop(specs) -> None:
    prompt = to_prompt(_load("hallo_masks_and_region_weights.json"), specs)
    face_mask = next(node_id for node_id, (node_type, _) in prompt.items() if node_type == "HalloFaceMask")
    previews = [inputs["images"] for node_type, inputs in prompt.values() if node_type == "PreviewImage"]
    assert (face_mask, 6) in previews


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if p.name != "hallo_photo_paste_back.json"],
                         ids=lambda p: p.stem)
def test_workflows_saved_before_framing_still_load(path, specs) -> None:
    """A Hallo Face Mask saved before issue #11 has four widget values and six outputs: it loads, and the
    prompt leaves framing and crop_scale out, so the node runs with its defaults."""
    workflow = _load(path.name)
    for node in workflow["nodes"]:
        if node["type"] == "HalloFaceMask":
            del node["widgets_values"][4:]
            if node["outputs"][6]["links"]:  # the masks example previews the crop: that link is new too
                (link,) = node["outputs"][6]["links"]
                workflow["links"] = [x for x in workflow["links"] if x[0] != link]
                workflow["nodes"] = [n for n in workflow["nodes"] if all(i["link"] != link for i in n["inputs"])]
            del node["outputs"][6:]
    assert check_workflow(workflow, specs, saved_before=True) == []
    assert any("no value for widget framing" in p for p in check_workflow(workflow, specs))  # shipped ones: complete
    (inputs,) = [inputs for node_type, inputs in to_prompt(workflow, specs).values() if node_type == "HalloFaceMask"]
    assert "framing" not in inputs and "crop_scale" not in inputs and inputs["allow_missing_identity"] is False


def test_the_videohelpersuite_check_fits_our_schemas(comfy) -> None:
    """tests/nodes/data/vhs_video_combine_api.json (VHS Load Audio (upload) -> our nodes -> VHS Video Combine with
    Paste Back's fps), run in a real ComfyUI with VideoHelperSuite (README, "Checked in a real ComfyUI"): its
    inputs for our nodes are the ones our schemas have, every required one given."""
    prompt = json.loads((REPO / "tests" / "nodes" / "data" / "vhs_video_combine_api.json").read_text())
    nodes = comfy.nodes()
    ours = {key: node for key, node in prompt.items() if node["class_type"] in nodes}
    # every node but the segment ones, which the distributed workflow shows
    assert {node["class_type"] for node in ours.values()} == set(nodes) - {"HalloSegmentPlan", "HalloSegmentJoin"}
    for key, node in ours.items():
        schema = nodes[node["class_type"]].define_schema()
        names = {i.id for i in schema.inputs}
        required = {i.id for i in schema.inputs if not i.optional}
        assert required <= set(node["inputs"]) <= names, key
    combine = prompt["10"]["inputs"]
    paste = next(k for k, n in ours.items() if n["class_type"] == "HalloPasteBack")
    assert combine["frame_rate"] == [paste, 1]  # the fps output, by slot
