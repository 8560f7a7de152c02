"""Tiny ONNX models with MDX-Net's interface ((batch, 4, dim_f, dim_t) spectrogram in and out),
whose effect is known, for testing the separation around them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require

_OPSET = 13
_IR_VERSION = 8


def write_mdx_model(
    path: str | Path,
    dim_f: int,
    dim_t: int,
    gain_per_bin: np.ndarray | float = 1.0,
    gain_per_channel: np.ndarray | float = 1.0,
) -> Path:
    """A model that multiplies each input value by a fixed gain per frequency bin and per channel
    ([L.re, L.im, R.re, R.im]). All ones: the identity; a 0/1 bin vector: a band-pass "separator"
    that keeps the bins whose gain is 1; channel gains (1, 1, 0, 0): keep only the left channel."""
    onnx = require("onnx", "onnx", "Writing the tiny test separator")
    helper, TP = onnx.helper, onnx.TensorProto
    bins = np.broadcast_to(np.asarray(gain_per_bin, dtype=np.float32), (dim_f,))
    channels = np.broadcast_to(np.asarray(gain_per_channel, dtype=np.float32), (4,))
    gains = (channels[:, None] * bins[None, :]).reshape(1, 4, dim_f, 1)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "gains"], ["output"], name="bin_gains")],
        "tiny_mdx",
        [helper.make_tensor_value_info("input", TP.FLOAT, ["batch", 4, dim_f, dim_t])],
        [helper.make_tensor_value_info("output", TP.FLOAT, ["batch", 4, dim_f, dim_t])],
        initializer=[onnx.numpy_helper.from_array(np.ascontiguousarray(gains), "gains")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="hallo-tiny")
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path
