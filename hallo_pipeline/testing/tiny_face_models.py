"""Tiny ONNX stand-ins for insightface's antelopev2 detector and recogniser.

insightface's model zoo gives a model its role from its ONNX signature: a graph with 5 or more
outputs is an SCRFD detector (9 outputs: scores, box distances and 5 keypoints for strides
8/16/32, two anchors per cell, rank-2 outputs), and a square input of at least 112 px whose side
is a multiple of 16 is an ArcFace recogniser. These files have exactly those signatures.

The detector "sees" a face wherever a 32x32 cell of its 640x640 input is vivid green or cyan
(G - R close to full scale; natural photos rarely are), so tests can draw faces: a green
square of 50-100 px (as seen in the detector's 640-px input) is one face. The more blue the
square holds, the larger the reported box (pure green: 320 px, cyan: twice that), which lets
tests tell faces apart by size. With `fixed_face=True` (the detector `make-tiny-models` writes) it
instead reports one face in the middle of its input whatever the picture, so a real portrait gets
an identity. The recogniser maps
an 8x8 average of the aligned 112x112 crop through a fixed random matrix to 512 numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNISER_FILE = "glintr100.onnx"
FACE_GREEN = (0, 255, 0)  # RGB colour of a drawn face
_STRIDES = (8, 16, 32)
_FACE_STRIDE = 32
_GREEN_THRESHOLD = 1.2  # on G - R with channels normalised to about [-1, 1]
_GREEN_GAIN = 20.0
# Box half-size in strides for pure green (blue adds up to as much again): large enough that the
# boxes of neighbouring cells covered by one square overlap past the NMS threshold.
_BOX_HALF = 5.0
# Five keypoints (eyes, nose, mouth corners) relative to the cell centre, in box half-sizes.
_KEYPOINTS = np.array([[-0.3, -0.2], [0.3, -0.2], [0.0, 0.05], [-0.22, 0.3], [0.22, 0.3]], dtype=np.float32)
_RECOGNISER_POOL = 14  # 112 / 14 = 8x8 cells
_OPSET = 13
_IR_VERSION = 8


def _onnx():
    return require("onnx", "onnx", "Writing the tiny test face models")


def _const(name: str, values, dtype=np.float32):
    onnx = _onnx()
    array = np.asarray(values, dtype=dtype)
    return onnx.helper.make_node(
        "Constant", [], [name], name=f"const_{name}", value=onnx.numpy_helper.from_array(array, name)
    )


def _save(graph, path: Path) -> Path:
    onnx = _onnx()
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", _OPSET)], producer_name="hallo-tiny"
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


DETECTOR_SIDE = 640  # insightface feeds the detector a 640x640 canvas (det_size)


def _centre_cell_scores() -> np.ndarray:
    cells = DETECTOR_SIDE // _FACE_STRIDE
    scores = np.zeros((cells * cells, 1), dtype=np.float32)
    scores[(cells // 2) * cells + cells // 2] = 1.0
    return scores


def write_detector(path: str | Path, fixed_face: bool = False) -> Path:
    onnx = _onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    node = helper.make_node
    widths = {"score": 1, "bbox": 4, "kps": 10}
    nodes = [
        _const("w_green", np.array([-1.0, 1.0, 0.0]).reshape(1, 3, 1, 1)),
        _const("w_blue", np.array([0.0, 0.0, 1.0]).reshape(1, 3, 1, 1)),
        _const("column", [-1, 1], np.int64),
        *(_const(f"rows{w}", [-1, w], np.int64) for w in widths.values()),
        _const("threshold", [_GREEN_THRESHOLD]),
        _const("gain", [_GREEN_GAIN]),
        _const("zero", [0.0]),
        _const("one", [1.0]),
        _const("half", [_BOX_HALF]),
        _const("blue_gain", [_BOX_HALF / 2]),
        _const("box_sides", np.ones((1, 4))),
        _const("keypoints", _KEYPOINTS.reshape(1, 10)),
        node("Conv", ["input.1", "w_green"], ["green"], name="green_map"),
        node("Conv", ["input.1", "w_blue"], ["blue"], name="blue_map"),
    ]
    outputs: dict[str, list[str]] = {kind: [] for kind in widths}
    for s in _STRIDES:
        pool = dict(kernel_shape=[s, s], strides=[s, s])
        nodes += [
            node("AveragePool", ["green"], [f"g{s}"], name=f"pool_green_{s}", **pool),
            node("AveragePool", ["blue"], [f"b{s}"], name=f"pool_blue_{s}", **pool),
            node("Reshape", [f"g{s}", "column"], [f"gc{s}"], name=f"cells_green_{s}"),
            node("Reshape", [f"b{s}", "column"], [f"bc{s}"], name=f"cells_blue_{s}"),
        ]
        if s == _FACE_STRIDE and fixed_face:  # one sure face on the centre cell of the 640 canvas
            nodes += [
                _const(f"centre{s}", _centre_cell_scores()),
                node("Mul", [f"gc{s}", "zero"], [f"gz{s}"], name=f"zero_{s}"),
                node("Add", [f"gz{s}", f"centre{s}"], [f"sc{s}"], name=f"score_{s}"),
            ]
        elif s == _FACE_STRIDE:  # sigmoid(gain * (green - threshold)): ~1 on green cells, ~0 elsewhere
            nodes += [
                node("Sub", [f"gc{s}", "threshold"], [f"ge{s}"], name=f"excess_{s}"),
                node("Mul", [f"ge{s}", "gain"], [f"gl{s}"], name=f"logit_{s}"),
                node("Sigmoid", [f"gl{s}"], [f"sc{s}"], name=f"score_{s}"),
            ]
        else:  # no faces at the finer strides
            nodes.append(node("Mul", [f"gc{s}", "zero"], [f"sc{s}"], name=f"score_{s}"))
        # box half-size in strides: half * (1 + (blue + 1) / 2), blue in [-1, 1]
        nodes += [
            node("Add", [f"bc{s}", "one"], [f"bp{s}"], name=f"blue_shift_{s}"),
            node("Mul", [f"bp{s}", "blue_gain"], [f"bx{s}"], name=f"blue_extra_{s}"),
            node("Add", [f"bx{s}", "half"], [f"size{s}"], name=f"size_{s}"),
            node("Mul", [f"size{s}", "box_sides"], [f"d{s}"], name=f"box_{s}"),
            node("Mul", [f"size{s}", "keypoints"], [f"k{s}"], name=f"kps_{s}"),
        ]
        # Two anchors per cell, stored cell by cell: put each row twice side by side, then split.
        for kind, src in (("score", f"sc{s}"), ("bbox", f"d{s}"), ("kps", f"k{s}")):
            out = f"{kind}_{s}"
            nodes += [
                node("Concat", [src, src], [f"{out}_pair"], name=f"{out}_anchors", axis=1),
                node("Reshape", [f"{out}_pair", f"rows{widths[kind]}"], [out], name=f"{out}_rows"),
            ]
            outputs[kind].append(out)
    graph_outputs = [
        helper.make_tensor_value_info(name, TP.FLOAT, [f"n_{name}", widths[kind]])
        for kind in ("score", "bbox", "kps")
        for name in outputs[kind]
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TP.FLOAT, [1, 3, "height", "width"])],
        graph_outputs,
    )
    return _save(graph, Path(path))


def write_recogniser(path: str | Path, seed: int = 0) -> Path:
    onnx = _onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    features = 3 * (112 // _RECOGNISER_POOL) ** 2
    rng = np.random.default_rng(seed)
    # Scaled so that embeddings have norms of about 20, like ArcFace's raw vectors.
    weight = (rng.standard_normal((features, 512)) * (1.5 / np.sqrt(features))).astype(np.float32)
    # Node names avoid the "Sub"/"Mul" prefixes by which insightface spots MXNet-style models.
    nodes = [
        helper.make_node(
            "AveragePool",
            ["input.1"],
            ["pooled"],
            name="pool",
            kernel_shape=[_RECOGNISER_POOL] * 2,
            strides=[_RECOGNISER_POOL] * 2,
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["embedding"], name="project"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TP.FLOAT, ["batch", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TP.FLOAT, ["batch", 512])],
        initializer=[onnx.numpy_helper.from_array(weight, "projection")],
    )
    return _save(graph, Path(path))


def write_tiny_face_models(folder: str | Path, fixed_face: bool = False) -> Path:
    """Write the two files into `folder` (a `face_analysis/models` folder) and return it.

    fixed_face: the detector reports one face in the middle of any picture (for trying the
    pack on real portraits) instead of one per drawn green square (for tests)."""
    folder = Path(folder)
    write_detector(folder / DETECTOR_FILE, fixed_face=fixed_face)
    write_recogniser(folder / RECOGNISER_FILE)
    return folder


def draw_face(rgb: np.ndarray, x: int, y: int, side: int, blue: int = 0) -> np.ndarray:
    """A copy of `rgb` with a square "face" for the tiny detector at (x, y)."""
    out = rgb.copy()
    out[y : y + side, x : x + side] = (FACE_GREEN[0], FACE_GREEN[1], blue)
    return out
