"""Parity case `masks`: boxes, blurred region maps, token masks and FaceLocator input (exact).

Everything is computed from the case's stored landmarks, except the end-to-end test, which runs
mediapipe on the source image: its built-in face mesh (the landmarks' origin, see the fixture README)
and the same model through the Tasks API (the tiny model folder's .task).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.conftest import assert_matches, case

CASE = case("masks")
NAMES = CASE.names("expected.")
pytestmark = pytest.mark.parity
# The masks case does not name its source image; the pipeline case, made from the same portrait, does.
SOURCE_IMAGE_DEFAULT = "inputs/face.png"

# expected.<name> -> attribute of RegionMaps
MAP_TENSORS = {
    "expected.face_mask": "face_mask",
    "expected.lip_mask": "lip_mask",
    "expected.face_mask_blur": "face_blur",
    "expected.sep_background": "full",
    "expected.sep_face": "face",
    "expected.sep_lip": "lip",
}
# expected.<prefix>.<level> -> RegionMasks field
TOKEN_TENSORS = {"expected.full_mask": "full", "expected.face_mask_tokens": "face", "expected.lip_mask_tokens": "lip"}


def _require_case() -> None:
    if not CASE.present:
        pytest.skip(f"case files {CASE.name}.json/.safetensors not in {CASE.root}")


def _source_size() -> tuple[int, int]:
    width, height = CASE.settings["image_size_wh"]
    return int(width), int(height)


def _working_size() -> int:
    width, height = CASE.settings["img_size"]
    assert width == height, "the release resizes the reference to a square"
    return int(width)


def run_masks(tensors: dict, settings: dict) -> dict[str, torch.Tensor]:
    """Our outputs, named like the fixture's `expected.*` tensors (float tensors as the fixture stores them)."""
    from hallo_pipeline.hallo.masks import face_region_tensor, region_maps, token_masks

    width, height = _source_size()
    size = _working_size()
    maps = region_maps(
        tensors["input.landmarks"].numpy(), width, height, settings["face_expand_ratio"], settings["lip_expand_ratio"]
    )
    out = {name: torch.from_numpy(getattr(maps, attr)) for name, attr in MAP_TENSORS.items()}
    for level, masks in enumerate(token_masks(maps, size)):
        for prefix, field in TOKEN_TENSORS.items():
            out[f"{prefix}.{level}"] = getattr(masks, field)
    region = face_region_tensor(maps.face_mask, size)
    assert torch.equal(region[0], region[1]) and torch.equal(region[0], region[2])
    # The fixture stores the FaceLocator input as uint8 k with the float being k / 255: map back exactly.
    region_u8 = torch.round(region[0] * 255).to(torch.uint8)
    assert torch.equal(region_u8.float() / 255, region[0]), "face region values are not k/255"
    out["expected.face_region_u8"] = region_u8
    out["boxes"] = torch.tensor([*maps.face_box, *maps.lip_box])
    return out


@pytest.fixture(scope="module")
def outputs(parity_path) -> dict[str, torch.Tensor]:
    _require_case()
    return run_masks(CASE.tensors, CASE.settings)


@pytest.mark.parametrize("name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason="no masks case"))])
def test_masks(name: str, outputs: dict, parity_path) -> None:
    if name.startswith("expected.ref_image_u8"):
        from hallo_pipeline.face.images import to_rgb_uint8
        from hallo_pipeline.hallo.face_analysis import reference_tensor

        ours = reference_tensor(to_rgb_uint8(parity_path / SOURCE_IMAGE_DEFAULT), _working_size())
        expected = (CASE.tensors[name].float() / 255 - 0.5) / 0.5
        assert_matches(ours, expected, CASE.tolerance(name), f"masks {name}")
        return
    assert name in outputs, f"masks: the fixture has {name!r}, which this test does not know how to produce"
    assert_matches(outputs[name], CASE.tensors[name], CASE.tolerance(name), f"masks {name}")


def test_masks_boxes(outputs: dict) -> None:
    boxes = outputs["boxes"].tolist()
    assert boxes[:4] == CASE.settings["face_box_xyxy"]
    assert boxes[4:] == CASE.settings["lip_box_xyxy"]


def test_masks_unexpanded_boxes_and_landmark_lists(parity_path) -> None:
    _require_case()
    from hallo_pipeline.face.boxes import LIP_IDS, SILHOUETTE_IDS, landmark_box

    assert list(SILHOUETTE_IDS) == CASE.settings["silhouette_ids"]
    assert list(LIP_IDS) == CASE.settings["lip_ids"]
    landmarks = CASE.tensors["input.landmarks"].numpy()
    assert list(landmark_box(landmarks, SILHOUETTE_IDS)) == CASE.settings["face_box_unexpanded_xyxy"]
    assert list(landmark_box(landmarks, LIP_IDS)) == CASE.settings["lip_box_unexpanded_xyxy"]


def test_masks_levels_match_working_size(parity_path) -> None:
    _require_case()
    from hallo_pipeline.hallo.masks import LEVEL_DIVISORS

    assert [_working_size() // d for d in LEVEL_DIVISORS] == CASE.settings["levels"]


@pytest.mark.parametrize("backend", ["face_mesh", "tasks"])
def test_masks_end_to_end_landmarks(request, parity_path, tmp_path, backend: str) -> None:
    """Real mediapipe on the source image gives the release's boxes: the built-in face mesh (where this
    mediapipe still has it) and the tiny model folder's Face Landmarker .task (any mediapipe)."""
    _require_case()
    mp = pytest.importorskip("mediapipe")
    from hallo_pipeline.face.images import to_rgb_uint8
    from hallo_pipeline.face.landmarks import TASK_FILE, LandmarkDetector, choose_face
    from hallo_pipeline.hallo.masks import region_maps

    if backend == "face_mesh":
        if not hasattr(getattr(mp, "solutions", None), "face_mesh"):
            pytest.skip(f"mediapipe {mp.__version__} has no built-in face mesh (it went after 0.10.21)")
        detector = LandmarkDetector(models_dir=None)
    else:
        (tmp_path / TASK_FILE).parent.mkdir(parents=True)
        (tmp_path / TASK_FILE).write_bytes(request.getfixturevalue("face_landmarker_task").read_bytes())
        detector = LandmarkDetector(models_dir=tmp_path)
    assert detector.backend == backend
    rgb = to_rgb_uint8(parity_path / SOURCE_IMAGE_DEFAULT)
    assert (rgb.shape[1], rgb.shape[0]) == _source_size()
    landmarks = choose_face(detector.detect(rgb))
    assert landmarks.shape == tuple(CASE.tensors["input.landmarks"].shape) and landmarks.dtype == np.float64
    maps = region_maps(
        landmarks, rgb.shape[1], rgb.shape[0], CASE.settings["face_expand_ratio"], CASE.settings["lip_expand_ratio"]
    )
    assert list(maps.face_box) == CASE.settings["face_box_xyxy"]
    assert list(maps.lip_box) == CASE.settings["lip_box_xyxy"]
