"""The Hallo3 segment loop (SPEC §11) on random tiny networks and a stand-in VAE: audio windows, segment count,
the order of random draws, the motion frames carried between segments, streaming and input checks. The
release's numbers are checked by the slow parity case `two_segments`."""

from __future__ import annotations

import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.hallo3.noise import SeededNoise
from hallo_pipeline.hallo3.preprocess import drop_motion_pixels
from hallo_pipeline.hallo3.segments import (
    LoopSettings,
    VideoConditions,
    audio_window,
    generate_segments,
    segment_count,
)
from hallo_pipeline.hallo3.stages import StepReport
from hallo_pipeline.latent_preview import fit_latent_rgb
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks

SETTINGS = LoopSettings.from_config(TINY, steps=3)
H, W = TINY.segment.image_size


class RecordingNoise(SeededNoise):
    """Seeded draws, with each one's kind and shape kept, and the draws themselves."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.log: list[tuple[str, tuple[int, ...]]] = []
        self.values: list[torch.Tensor] = []

    def randn(self, shape):
        self.log.append(("randn", tuple(shape)))
        self.values.append(super().randn(shape))
        return self.values[-1]

    def rand(self, shape):
        self.log.append(("rand", tuple(shape)))
        self.values.append(super().rand(shape))
        return self.values[-1]


class StandInVAE:
    """Shapes of the CogVideoX VAE (x8 spatial, 1 + 4k frames <-> 1 + k latents) with trivial maps, so the loop
    runs in milliseconds; keeps every encode's pixels."""

    scale_factor = 0.7

    def __init__(self, z: int = TINY.segment.latent_channels, factor: int = TINY.segment.vae_factor):
        self.z, self.factor, self.encoded = z, factor, []

    def latent_shape(self, shape):
        b, _, t, h, w = shape
        return (b, self.z, 1 + (t - 1) // 4, h // self.factor, w // self.factor)

    def encode(self, frames, noise):
        self.encoded.append(frames.clone())
        return (noise + frames.mean()) * self.scale_factor

    def decode(self, latents, output_device=None):
        x = latents[:, :3] / self.scale_factor
        x = torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(4, dim=2)], dim=2)
        x = x.repeat_interleave(self.factor, dim=3).repeat_interleave(self.factor, dim=4)
        return (1.5 * torch.tanh(x)).to(output_device or x.device)


def _conditions(frames: int, seed: int = 1, rows: int | None = None) -> VideoConditions:
    g = torch.Generator().manual_seed(seed)
    clip = SETTINGS.segment_frames
    rows = rows if rows is not None else -(-frames // clip) * clip
    ap = TINY.audio_proj
    image = torch.rand(1, 3, H, W, generator=g) * 2 - 1
    return VideoConditions(
        image=image,
        reference=image * (torch.rand(1, 1, H, W, generator=g) > 0.5),
        face_embedding=torch.randn(1, TINY.face_proj.clip_embeddings_dim, generator=g),
        text=torch.randn(1, TINY.dit.text_length, TINY.dit.text_hidden_size, generator=g),
        audio=torch.randn(rows, ap.seq_len, ap.blocks, ap.channels, generator=g),
        frames=frames,
    )


@pytest.fixture(scope="module")
def nets():
    return random_networks()


def test_settings_from_the_config():
    assert (SETTINGS.segment_frames, SETTINGS.latent_frames) == (TINY.dit.num_frames, TINY.dit.latent_frames)
    assert SETTINGS.motion_frames == TINY.segment.n_motion_frame
    assert SETTINGS.stride == SETTINGS.segment_frames - SETTINGS.motion_frames


@pytest.mark.parametrize("frames, count", [(1, 1), (7, 1), (8, 2), (14, 2), (15, 3)])
def test_segment_count(frames, count):
    assert segment_count(frames, 7) == count


def test_audio_windows():
    features = torch.arange(20.0)[:, None, None, None].expand(20, 2, 1, 1)
    m, stride, clip = SETTINGS.motion_frames, SETTINGS.stride, SETTINGS.segment_frames
    first = audio_window(features, 0, None, SETTINGS)
    assert first.shape == (clip, 2, 1, 1)
    assert torch.equal(first[:m], torch.zeros(m, 2, 1, 1))
    assert torch.equal(first[m:], features[:stride])
    second = audio_window(features, 1, first, SETTINGS)
    assert torch.equal(second, features[stride - m : 2 * stride])
    # The last one is short: padded by repeating its last row.
    third = audio_window(features, 2, second, SETTINGS)
    real = features[2 * stride - m : 20]
    assert torch.equal(third[: real.shape[0]], real)
    assert torch.equal(third[real.shape[0] :], features[19].expand(clip - real.shape[0], 2, 1, 1))


def test_draw_order_motion_frames_and_length(nets):
    frames = SETTINGS.stride + 3  # two segments, the second keeping 3 of its new frames
    vae, noise = StandInVAE(), RecordingNoise()
    segments = list(generate_segments(nets, vae, _conditions(frames), noise, SETTINGS))
    assert [s.frames.shape[0] for s in segments] == [SETTINGS.stride, 3]

    latent = vae.latent_shape((1, 3, 3, H, W))
    state = (1, SETTINGS.latent_frames, *latent[1:2], *latent[3:])
    sampler = [("randn", state)] * (1 + 1 + 2 * (SETTINGS.steps - 2))
    per_segment = [("rand", (H, W)), ("randn", latent)]
    assert noise.log == per_segment + [("randn", latent)] + sampler + per_segment + sampler

    # Encodes: segment 0's [image, image, image] (with the drop), the reference, then segment 1's.
    assert len(vae.encoded) == 3
    image = _conditions(frames).image
    assert torch.equal(vae.encoded[0][:, :, 0], image)
    assert torch.equal(vae.encoded[1][:, :, 0], _conditions(frames).reference)
    drop_map = noise.values[-len(sampler) - 2]  # segment 1's, before its encode noise and its sampler draws
    # The last frames as written (clamped to [0, 1]), back in [-1, 1].
    motion = ((segments[0].decoded[:, :, -SETTINGS.motion_frames :] + 1) / 2).clamp(0, 1) * 2 - 1
    expected = drop_motion_pixels(motion, drop_map, SETTINGS.mask_rate)
    assert torch.equal(vae.encoded[2][:, :, 1:], expected)
    assert torch.equal(vae.encoded[2][:, :, 0], image)
    for s in segments:
        assert s.concat.shape == state and s.latent.shape == state
        assert torch.equal(s.concat[:, 1:], torch.zeros_like(s.concat[:, 1:]))
        assert s.frames.min() >= 0 and s.frames.max() <= 1


def test_streams_one_segment_at_a_time(nets):
    noise = RecordingNoise()
    loop = generate_segments(nets, StandInVAE(), _conditions(3 * SETTINGS.stride), noise, SETTINGS)
    assert noise.log == []  # nothing runs before the first segment is asked for
    next(loop)
    first = len(noise.log)
    next(loop)
    assert len(noise.log) == first + first - 1  # the reference draw was segment 0's only


def test_same_seed_same_video(nets):
    def video(seed):
        segments = generate_segments(nets, StandInVAE(), _conditions(SETTINGS.stride + 1), SeededNoise(seed), SETTINGS)
        return torch.cat([s.frames for s in segments])

    assert torch.equal(video(3), video(3))
    assert not torch.equal(video(3), video(4))


def test_too_few_audio_rows_is_named(nets):
    with pytest.raises(InputError, match="audio"):
        next(generate_segments(nets, StandInVAE(), _conditions(20, rows=10), SeededNoise(0), SETTINGS))


def test_reference_of_another_size_is_named(nets):
    c = _conditions(5)
    bad = VideoConditions(c.image, c.reference[..., :-8], c.face_embedding, c.text, c.audio, c.frames)
    with pytest.raises(InputError, match="reference"):
        next(generate_segments(nets, StandInVAE(), bad, SeededNoise(0), SETTINGS))


def test_previews_offer_each_steps_prediction_in_colours_fitted_on_the_reference(nets):
    conditions = _conditions(SETTINGS.stride + 1)
    pairs, seen = [], []
    report = StepReport(2, SETTINGS.steps, lambda p: seen.append((p, p.preview())), should_cancel=None)

    def on_reference(latent, image):
        pairs.append((latent.clone(), image))
        report.reference(latent, image)

    segments = list(generate_segments(nets, StandInVAE(), conditions, SeededNoise(0), SETTINGS, on_step=report,
                                      on_reference=on_reference))
    assert len(segments) == 2 and len(seen) == 2 * SETTINGS.steps
    ((latent, image),) = pairs  # once per video
    assert latent.shape == (TINY.segment.latent_channels, H // 8, W // 8)
    assert torch.equal(image, conditions.reference[0])
    for index, segment in enumerate(segments):
        progress, preview = seen[(index + 1) * SETTINGS.steps - 1]
        assert (progress.clip, progress.step, preview.space) == (index, SETTINGS.steps, "cogvideox")
        torch.testing.assert_close(preview.latents, segment.latent[0])  # the last step's x0 is the segment's latent
    expected = fit_latent_rgb(latent, image)
    assert all(p.rgb is seen[0][1].rgb for _, p in seen)  # fitted once for the whole video
    torch.testing.assert_close(seen[0][1].rgb.factors, expected.factors)
