"""Hallo2's final-chunk padding (SPEC §10), checked against an independent encoding of the last chunk.

The release pads only the last 60-second chunk, only if that chunk's own frame count s is not a
multiple of the clip length F, and then by p = F - (T mod F) frames (p = F when the total T already
is a multiple of F). We render T frames in ceil(T / F) clips: silent rows past that are dropped
(but stay the neighbours of the last real rows' windows), and missing rows repeat the last one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hallo_pipeline.audio.features import AudioEncoder, frame_count

CLIP = 16
CHUNK_SECONDS = 60
SAMPLES_PER_FRAME = 640


def coarse_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Random steps held for 10 ms each: cheap to make for minutes of audio, and not silence."""
    samples = round(seconds * 16000)
    rng = np.random.default_rng(seed)
    steps = 0.1 * rng.standard_normal(-(-samples // 160)).astype(np.float32)
    return np.repeat(steps, 160)[:samples]


def chunk_alone(encoder: AudioEncoder, chunk: np.ndarray, pad_frames: int) -> torch.Tensor:
    """The release's encoding of one chunk: normalise, append `pad_frames` of zeros, CNN, interpolate to
    the chunk's own (padded) frame count, transformer. Stages called one by one, not through `encode`."""
    frames = frame_count(chunk.size) + pad_frames
    values = encoder.input_values(chunk, pad_frames * SAMPLES_PER_FRAME)
    return encoder.layer_outputs(encoder.interpolate(encoder.cnn_features(values), frames))


def windows_of(sequence: torch.Tensor, rows: range) -> torch.Tensor:
    """Frames i-2..i+2 of `sequence` for each i in `rows`, clamped to the sequence (SPEC §8)."""
    index = (torch.tensor(list(rows))[:, None] + torch.arange(-2, 3)).clamp(0, sequence.shape[0] - 1)
    return sequence[index]


# seconds, T (summed frames), s (last chunk's frames), p (padding frames), rows of `features`
CASES = [
    pytest.param(60.16, 1504, 4, 16, 1504, id="60.16s-short-last-chunk-pads-a-whole-clip"),
    pytest.param(60.64, 1516, 16, 0, 1520, id="60.64s-whole-clips-in-last-chunk-no-padding"),
    pytest.param(240.0, 6000, 1500, 16, 6000, id="240s-four-full-chunks-pads-a-whole-clip"),
]


@pytest.mark.parametrize("seconds, frames, last, pad, rows", CASES)
def test_hallo2_final_chunk_padding(encoder, seconds, frames, last, pad, rows) -> None:
    audio = coarse_noise(seconds)
    out = encoder.encode(audio, 16000, clip_length=CLIP, chunk_seconds=CHUNK_SECONDS)

    assert out.frames == frames
    assert out.padded_frames == rows == math.ceil(frames / CLIP) * CLIP
    assert out.features.shape[0] == out.hidden_states.shape[0] == rows

    # A full chunk is encoded as if it were the whole audio: own normalisation, no context, no padding.
    first = chunk_alone(encoder, audio[: CHUNK_SECONDS * 16000], 0)
    torch.testing.assert_close(out.hidden_states[:1500], first, atol=1e-6, rtol=0)

    # The last chunk, encoded on its own with the release's padding.
    start = frames - last  # its first frame: every earlier chunk is a full 60 s (1500 frames)
    expected = chunk_alone(encoder, audio[start * SAMPLES_PER_FRAME :], pad)
    assert expected.shape[0] == last + pad
    rendered = rows - start  # rows of `features` that belong to the last chunk
    computed = min(rendered, last + pad)
    torch.testing.assert_close(out.hidden_states[start : start + computed], expected[:computed], atol=1e-6, rtol=0)

    # Rows past the computed ones repeat the last (the unpadded case's partial last clip).
    if rendered > computed:
        assert torch.equal(out.hidden_states[start + computed :], expected[-1].expand(rendered - computed, -1, -1))
    # The sequence the windows run over: the chunk's computed rows (silent padding included, also the
    # rows that are not rendered), then the repeated last row where rows are missing.
    sequence = torch.cat([expected, expected[-1:].expand(max(0, rendered - computed), -1, -1)])
    tail = range(2, rendered)  # rows whose whole window lies in the last chunk
    torch.testing.assert_close(
        out.features[start + 2 : start + rendered], windows_of(sequence, tail), atol=1e-6, rtol=0
    )

    if pad:
        # The last real frame sees the two silent rows after it, not itself repeated (clamping).
        torch.testing.assert_close(out.features[frames - 1, 3:], expected[last : last + 2], atol=1e-6, rtol=0)
        assert not torch.allclose(out.features[frames - 1, 4], out.hidden_states[frames - 1], atol=1e-3)


@pytest.mark.parametrize(
    "chunk_frames, clip, pad",
    [
        ([1500, 4], 16, 16),  # 60.16 s: s = 4, T = 1504 = 94 clips -> a whole clip of silence
        ([1500, 16], 16, 0),  # 60.64 s: s mod F = 0 -> nothing, although T = 1516 is not whole clips
        ([1500] * 4, 16, 16),  # 240 s: s = 1500 = 93.75 clips, T = 6000 = 375 clips
        ([1500, 5], 16, 15),  # T = 1505: the usual case, padded to whole clips
        ([1500, 1500, 16, 16], 16, 0),  # only the last chunk's own count decides
        ([33], 16, 15),  # one chunk (under 60 s): s = T, so Hallo's rule ...
        ([32], 16, 0),  # ... also when T is whole clips (p = F needs an earlier chunk)
    ],
)
def test_hallo2_padding_rule(chunk_frames, clip, pad) -> None:
    from hallo_pipeline.audio.features import final_chunk_padding

    assert final_chunk_padding(chunk_frames, clip, hallo2=True) == pad


@pytest.mark.parametrize("frames, clip, pad", [(33, 16, 15), (32, 16, 0), (1, 16, 15), (48, 16, 0)])
def test_hallo_padding_rule_unchanged(frames, clip, pad) -> None:
    from hallo_pipeline.audio.features import final_chunk_padding

    assert final_chunk_padding([frames], clip, hallo2=False) == pad
