"""Runs a workflow the way ComfyUI's executor does: converted to a prompt, nodes in dependency
order, each node's outputs cached for its consumers. Our nodes run for real; the few core nodes
the examples use are small stand-ins with the same inputs and outputs (decoding and encoding go
through PyAV like ComfyUI's own)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tests.nodes.workflow_check import spec_from_object_info, to_prompt


class CoreNodes:
    def __init__(self, env, input_dir: Path, output_dir: Path):
        self.env, self.input_dir, self.output_dir = env, input_dir, output_dir
        self.saved: list[Path] = []
        self.previews: list[torch.Tensor] = []

    def LoadImage(self, image, upload=None):  # noqa: N802 - node ids
        from PIL import Image

        rgba = np.asarray(Image.open(self.input_dir / image).convert("RGBA"), dtype=np.float32) / 255
        return torch.from_numpy(rgba[..., :3])[None], torch.from_numpy(1 - rgba[..., 3])[None]

    def LoadAudio(self, audio, audioUI=None, upload=None):  # noqa: N802,N803
        waveform, rate = self.env.module("hallo_pipeline.audio.io").load_audio(self.input_dir / audio)
        return ({"waveform": torch.from_numpy(np.ascontiguousarray(waveform))[None], "sample_rate": rate},)

    def SaveVideo(self, video, filename_prefix, format, codec):  # noqa: N802,A002
        c = video.get_components()
        path = self.output_dir / f"{filename_prefix}_{len(self.saved):05}_.mp4"
        waveform = c.audio["waveform"][0] if c.audio is not None else None
        writer = self.env.module("hallo_pipeline.video").VideoWriter(
            path, fps=int(c.frame_rate), audio=waveform, sample_rate=c.audio["sample_rate"] if c.audio else None)
        with writer:
            writer.write(c.images.permute(0, 3, 1, 2))
        self.saved.append(path)
        return ()

    def PreviewImage(self, images):  # noqa: N802
        self.previews.append(images)
        return ()

    def MaskPreview(self, mask):  # noqa: N802
        self.previews.append(mask)
        return ()

    def ImageScale(self, image, upscale_method, width, height, crop):  # noqa: N802
        mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}.get(upscale_method,
                                                                                                    "bilinear")
        return (F.interpolate(image.movedim(-1, 1), size=(height, width), mode=mode).movedim(1, -1).clamp(0, 1),)

    def CreateVideo(self, images, fps, audio=None):  # noqa: N802
        latest = __import__("comfy_api.latest", fromlist=["InputImpl"])
        return (latest.InputImpl.VideoFromComponents(
            latest.Types.VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps))),)


def run_workflow(env, workflow: dict, input_dir: Path, output_dir: Path, overrides: dict | None = None) -> CoreNodes:
    """Execute every node; `overrides` = {node id: {input: value}} like the harness's --set."""
    ours = env.nodes()
    specs = {node_id: spec_from_object_info(cls.GET_NODE_INFO_V1()) for node_id, cls in ours.items()}
    prompt = to_prompt(workflow, specs)
    for node_id, values in (overrides or {}).items():
        prompt[node_id][1].update(values)
    core = CoreNodes(env, input_dir, output_dir)
    outputs: dict = {}

    def run(node_id):
        if node_id not in outputs:
            node_type, inputs = prompt[node_id]
            kwargs = {k: (run(v[0])[v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()}
            if node_type in ours:
                outputs[node_id] = ours[node_type].execute(**kwargs).args
            else:
                outputs[node_id] = getattr(core, node_type)(**kwargs)
        return outputs[node_id]

    for node_id in prompt:
        run(node_id)
    return core
