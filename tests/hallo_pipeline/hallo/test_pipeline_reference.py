"""HalloPipeline: ReferenceNet rows computed up front, and a caller-supplied placement."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import torch

from hallo_pipeline.devices import Placement
from hallo_pipeline.hallo.models import RegionMasks
from hallo_pipeline.hallo.pipeline import HalloPipeline
from hallo_pipeline.hallo.sampling.clip_loop import SamplerSettings
from tests.hallo_pipeline.hallo.tiny import random_net, tiny_config, tiny_vae

SIZE, CLIP = 64, 3


class RecordingPlacement(Placement):
    """Records what the pipeline hands it, as ComfyUI's placement would register models."""

    def __init__(self):
        super().__init__(torch.device("cpu"))
        self.homed, self.used = [], []

    def home(self, module):
        self.homed.append(module)
        return module

    @contextlib.contextmanager
    def use(self, *modules):
        self.used.append(modules)
        yield


def _face():
    g = torch.Generator().manual_seed(1)
    face_region = torch.zeros(3, SIZE, SIZE)
    face_region[:, 16:48, 20:44] = 1.0
    return SimpleNamespace(
        embedding=torch.randn(512, generator=g),
        face_region=face_region,
        masks=[RegionMasks(*(torch.rand(1, (SIZE // 8 >> i) ** 2, generator=g) for _ in range(3))) for i in range(4)],
        reference_image=torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1,
    )


def _audio():
    ap = tiny_config().audioproj
    features = torch.randn(2 * CLIP, ap.window, ap.layers, ap.channels, generator=torch.Generator().manual_seed(2))
    return SimpleNamespace(features=features, frames=2 * CLIP - 1)


def test_precomputed_rows_are_the_ones_the_first_clip_would_compute() -> None:
    placement = RecordingPlacement()
    pipeline = HalloPipeline(random_net(seed=3), tiny_vae(), placement=placement)
    assert pipeline.placement is placement
    assert pipeline.net.reference_unet in placement.homed and pipeline.codec.vae in placement.homed

    eager = pipeline.prepare_reference(_face(), image_rows=True)
    assert eager.image_rows is not None
    # one at a time, so the VAE's activations never share the GPU with the ReferenceNet's weights
    assert placement.used == [(pipeline.codec.vae,), (pipeline.net.reference_unet,)]
    lazy = pipeline.prepare_reference(_face())
    assert lazy.image_rows is None

    settings = SamplerSettings(steps=2, clip_length=CLIP, seed=5)
    frames_lazy = pipeline.sample(lazy, _audio(), settings).frames
    assert lazy.image_rows is not None  # filled by the first clip and kept on the object
    for a, b in zip(eager.image_rows, lazy.image_rows, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rows_before = [r.clone() for r in eager.image_rows]
    frames_eager = pipeline.sample(eager, _audio(), settings).frames
    torch.testing.assert_close(frames_eager, frames_lazy, rtol=0, atol=0)
    for a, b in zip(rows_before, eager.image_rows, strict=True):
        assert torch.equal(a, b)
