"""Resampling keeps a tone's frequency and level (checked against the analytic signal)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hallo_pipeline.audio.resample import resample


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


@pytest.mark.parametrize(
    "from_rate, freq", [(44100, 440.0), (48000, 1234.5), (8000, 300.0), (22050, 3000.0), (16000, 500.0)]
)
def test_sine_keeps_frequency_and_amplitude(from_rate: int, freq: float) -> None:
    seconds, amplitude, phase = 1.0, 0.5, 0.3
    out = resample(tone(freq, from_rate, seconds, amplitude, phase), from_rate, 16000)
    assert out.dtype == np.float32
    assert out.shape[0] == math.ceil(round(from_rate * seconds) * 16000 / from_rate)
    expected = tone(freq, 16000, seconds, amplitude, phase)[: out.shape[0]]
    # Away from the ends (the filter's edge transient), the result is the same tone sampled at 16 kHz.
    inner = slice(400, out.shape[0] - 400)
    assert np.max(np.abs(out[inner] - expected[inner])) < 2e-3 * amplitude


def test_frequency_above_new_nyquist_is_removed() -> None:
    out = resample(tone(11000.0, 44100, 1.0), 44100, 16000)  # above 8 kHz: must not alias into the band
    assert np.sqrt(np.mean(out[400:-400] ** 2)) < 1e-2 * 0.5


def test_multichannel_along_last_axis() -> None:
    stereo = np.stack([tone(440.0, 48000, 0.5), tone(880.0, 48000, 0.5)])
    out = resample(stereo, 48000, 16000)
    assert out.shape == (2, 8000)
    assert np.allclose(out[1], resample(stereo[1], 48000, 16000))
