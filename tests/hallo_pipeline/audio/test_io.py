"""Decoding files with PyAV and turning any waveform layout into checked mono 16 kHz."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from hallo_pipeline.audio.io import load_audio, to_mono_16k
from hallo_pipeline.errors import InputError

av = pytest.importorskip("av")


def write_audio(path, samples: np.ndarray, rate: int, codec: str, fmt: str, layout: str) -> None:
    """Encode (channels, samples) int16 or float32 with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(
            samples if fmt.endswith("p") else samples.T.reshape(1, -1), format=fmt, layout=layout
        )
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_pcm_wav_decodes_exactly(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pcm = rng.integers(-20000, 20000, size=(2, 4410), dtype=np.int16)
    path = tmp_path / "stereo.wav"
    write_audio(path, pcm, 44100, "pcm_s16le", "s16", "stereo")
    waveform, rate = load_audio(path)
    assert rate == 44100 and waveform.dtype == np.float32
    assert np.array_equal(waveform, pcm.astype(np.float32) / 32768)


def test_compressed_audio_decodes(tmp_path) -> None:
    t = np.arange(24000) / 24000
    signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    path = tmp_path / "tone.flac"
    write_audio(path, (signal * 32767).astype(np.int16), 24000, "flac", "s16", "mono")
    waveform, rate = load_audio(path)
    assert rate == 24000 and waveform.shape == (1, 24000)
    assert np.max(np.abs(waveform - signal)) < 1e-4  # flac is lossless up to the 16-bit rounding


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"RIFF not really")
    with pytest.raises(InputError, match="cannot be read|damaged|no audio track|contains no samples"):
        load_audio(bogus)


def test_layouts_agree() -> None:
    rng = np.random.default_rng(1)
    left, right = rng.uniform(-0.5, 0.5, size=(2, 3200)).astype(np.float32)
    mono = (left + right) / 2
    expected = to_mono_16k(mono, 16000)
    assert np.allclose(expected, mono)
    for layout in (np.stack([left, right]), np.stack([left, right]).T, torch.from_numpy(np.stack([left, right]))[None]):
        assert np.allclose(to_mono_16k(layout, 16000), expected, atol=1e-7)


def test_integer_pcm_is_scaled() -> None:
    pcm16 = np.array([0, 16384, -32768, 32767] * 400, dtype=np.int16)
    assert np.array_equal(to_mono_16k(pcm16, 16000)[:4], np.array([0, 0.5, -1, 32767 / 32768], dtype=np.float32))
    assert np.array_equal(to_mono_16k(torch.from_numpy(pcm16), 16000), to_mono_16k(pcm16, 16000))
    pcm8 = np.array([128, 192, 0, 255] * 400, dtype=np.uint8)  # unsigned, centred at 128
    assert np.array_equal(to_mono_16k(pcm8, 16000)[:4], np.array([0, 0.5, -1, 127 / 128], dtype=np.float32))


def test_other_rates_are_resampled() -> None:
    out = to_mono_16k(np.zeros(44100, np.float32) + 0.1, 44100)
    assert out.shape == (16000,)


@pytest.mark.parametrize(
    "waveform, rate, message",
    [
        (np.full(16000, np.nan, np.float32), 16000, "NaN or infinite"),
        (np.array([0.1, np.inf] * 8000, np.float32), 16000, "NaN or infinite"),
        (np.full(639, 0.1, np.float32), 16000, r"39\.9 ms long, shorter than one video frame \(40 ms\)"),
        (np.full(1000, 0.1, np.float32), 44100, "shorter than one video frame"),
        (np.zeros((2, 2, 1000), np.float32), 16000, "batch of 2"),
        (np.zeros((2, 2, 2, 1000), np.float32), 16000, "has shape"),
        (np.zeros(0, np.float32), 16000, "audio is empty"),
        (np.zeros(16000, np.float32) + 0.1, 0, "sample rate 0"),
        (np.zeros(16000, np.float32) + 0.1, 16000.5, "sample rate 16000.5"),
        (np.array(["a"] * 1000), 16000, "samples have type"),
    ],
)
def test_bad_audio_is_explained(waveform, rate, message) -> None:
    with pytest.raises(InputError, match=message):
        to_mono_16k(waveform, rate, min_samples=640)


def test_silence_warns_that_the_mouth_will_not_move() -> None:
    with pytest.warns(UserWarning, match="audio is silent.*mouth will not move"):
        to_mono_16k(np.zeros(16000, np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_mono_16k(np.full(16000, 0.01, np.float32), 16000)  # quiet but not silent: no warning
