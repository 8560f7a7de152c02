"""Every node's V3 schema: permanent ids, Hallo/ categories, a tooltip on every input, execute's signature."""

from __future__ import annotations

import inspect

import pytest

from tests.nodes.test_package import NODE_IDS

SOCKETS = {  # (inputs, outputs) as saved workflows refer to them
    # attention came last, so workflows saved before it keep their widget values in place
    "HalloModelLoader": (["model_folder", "variant", "precision", "device", "attention", "compile", "download_missing",
                          "weight_dtype"],
                         ["HALLO_PIPELINE"]),
    "HalloFaceMask": (
        # framing and crop_scale (optional) and the crop output came last, for the same reason
        ["pipeline", "image", "image_size", "face_expand_ratio", "multiple_faces", "allow_missing_identity", "framing",
         "crop_scale"],
        ["HALLO_FACE", "IMAGE", "MASK", "MASK", "MASK", "MASK", "IMAGE"],
    ),
    "HalloAudioEmbed": (
        ["pipeline", "audio", "separate_vocals", "mode", "clip_length"], ["HALLO_AUDIO", "INT", "AUDIO"]
    ),
    "HalloReferenceEncode": (["pipeline", "face"], ["HALLO_REFERENCE"]),
    "HalloSampler": (
        ["pipeline", "reference", "audio", "pose_weight", "face_weight", "lip_weight", "steps", "cfg", "seed", "mode",
         "start_frame", "end_frame", "previous", "prompt", "plan", "segment_index"],
        ["HALLO_FRAMES"],
    ),
    "HalloVideoStitch": (["frames", "audio", "fps", "frames_2", "frames_3", "frames_4"],
                         ["IMAGE", "AUDIO", "VIDEO", "FLOAT"]),
    "HalloPasteBack": (["images", "face", "feather", "color_match", "max_side", "fps"], ["IMAGE", "FLOAT"]),
    "HalloSegmentPlan": (["hallo_audio", "segments", "overlap_clips"], ["HALLO_SEGMENT_PLAN"]),
    "HalloSegmentJoin": (["segment_images", "plan", "audio", "fps"], ["IMAGE", "AUDIO", "VIDEO", "FLOAT"]),
}


@pytest.fixture
def schemas(comfy):
    return {node_id: cls.GET_SCHEMA() for node_id, cls in comfy.nodes().items()}


def test_ids_inputs_and_outputs_stay_as_saved_workflows_expect(schemas) -> None:
    assert list(schemas) == NODE_IDS
    for node_id, schema in schemas.items():
        inputs, outputs = SOCKETS[node_id]
        assert [i.id for i in schema.inputs] == inputs, node_id
        assert [o.io_type for o in schema.outputs] == outputs, node_id


def test_every_input_and_output_is_explained(schemas) -> None:
    for node_id, schema in schemas.items():
        assert schema.category.startswith("Hallo/") and schema.display_name and len(schema.description) > 40
        for i in schema.inputs:
            assert i.tooltip and len(i.tooltip) > 15, (node_id, i.id)
        for o in schema.outputs:
            assert o.tooltip and o.display_name, (node_id, o.id)


def test_execute_takes_exactly_the_inputs(comfy) -> None:
    for node_id, cls in comfy.nodes().items():
        schema = cls.GET_SCHEMA()
        params = inspect.signature(cls.execute).parameters
        assert list(params) == [i.id for i in schema.inputs], node_id
        for i in schema.inputs:  # ComfyUI leaves out unconnected optional inputs: they need a default
            assert (params[i.id].default is not inspect.Parameter.empty) == i.optional, (node_id, i.id)


def test_widgets_have_sensible_defaults(schemas) -> None:
    sampler = {i.id: i for i in schemas["HalloSampler"].inputs}
    assert sampler["seed"].control_after_generate is True
    assert (sampler["steps"].default, sampler["cfg"].default) == (40, 3.5)
    assert all(sampler[w].default == 1.0 for w in ("pose_weight", "face_weight", "lip_weight"))
    assert sampler["previous"].optional and sampler["end_frame"].default == 0
    assert sampler["prompt"].optional and sampler["prompt"].default == "" and sampler["prompt"].multiline
    face = {i.id: i for i in schemas["HalloFaceMask"].inputs}
    assert (face["image_size"].default, face["image_size"].step, face["face_expand_ratio"].default) == (512, 64, 1.2)
    loader = {i.id: i for i in schemas["HalloModelLoader"].inputs}
    assert loader["precision"].options == ["auto", "fp16", "bf16", "fp32"]
    assert loader["variant"].options == ["auto", "hallo", "hallo2", "hallo3"] and "low_vram" in loader["device"].options
    assert loader["attention"].options == ["auto", "sdpa", "flash", "sage"] and loader["attention"].default == "auto"
    assert all(f"{option}:" in loader["attention"].tooltip for option in ("sdpa", "flash", "sage"))
    dtypes = loader["weight_dtype"]
    assert (dtypes.options, dtypes.default, dtypes.optional) == (["default", "fp8_e4m3fn"], "default", True)
    assert all(f"{option}:" in dtypes.tooltip for option in dtypes.options)
    assert (face["framing"].options, face["framing"].default, face["crop_scale"].default) == (["crop", "stretch"],
                                                                                             "crop", 2.3)
    assert face["framing"].optional and face["crop_scale"].optional  # saved workflows without them still load
    paste = {i.id: i for i in schemas["HalloPasteBack"].inputs}
    assert (paste["feather"].default, paste["color_match"].default, paste["max_side"].default) == (0.05, True, 0)
    assert (paste["max_side"].min, paste["feather"].max) == (0, 0.5)
    stitch = {i.id: i for i in schemas["HalloVideoStitch"].inputs}
    assert stitch["fps"].default == 25.0 and all(stitch[f"frames_{k}"].optional for k in (2, 3, 4))
