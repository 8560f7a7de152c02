"""Reading audio files (PyAV) and turning any waveform into checked mono 16 kHz float32."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import HalloWarning, InputError
from .resample import resample

SAMPLE_RATE = 16000
# Peak below -80 dBFS: digital silence or near it. wav2vec2's normalisation would blow up whatever
# noise is there, so the mouth would not follow any speech.
SILENCE_PEAK = 1e-4
# Layouts with more channels than this are taken as (samples, channels) when samples come first.
_MAX_CHANNELS = 16

WaveformLike = Any  # numpy array or torch tensor: (samples,), (channels, samples) or (1, channels, samples)


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio (or video) file: float32 (channels, samples) in [-1, 1] and its sample rate."""
    av = require("av", "av", "Reading audio files")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {str(path)!r} does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"audio file {str(path)!r} cannot be read ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise InputError(f"file {str(path)!r} has no audio track; pass a file with speech in it")
        stream = container.streams.audio[0]
        # Convert every sample format (int16, int32, float, planar or packed) to planar float.
        converter = av.AudioResampler(format="fltp")
        parts: list[np.ndarray] = []
        rate = None
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                for converted in converter.resample(frame):
                    parts.append(converted.to_ndarray())
            for converted in converter.resample(None):
                parts.append(converted.to_ndarray())
        except av.error.FFmpegError as exc:
            raise InputError(f"audio file {str(path)!r} is damaged ({exc})") from exc
    if not parts or rate is None:
        raise InputError(f"audio file {str(path)!r} contains no samples")
    return np.concatenate(parts, axis=-1).astype(np.float32, copy=False), int(rate)


def _as_array(waveform: WaveformLike) -> np.ndarray:
    if hasattr(waveform, "detach"):  # torch tensor, without importing torch here
        waveform = waveform.detach().to("cpu")
        # half / bfloat16 have no numpy equivalent; integer PCM keeps its type to be scaled below
        waveform = (waveform.float() if waveform.is_floating_point() else waveform).numpy()
    array = np.asarray(waveform)
    if array.dtype == object or array.size == 0:
        raise InputError("audio is empty; pass a waveform with speech in it")
    return array


def _as_float(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        # Full scale is 2**(bits-1) (int16: 32768); unsigned PCM (8-bit WAV) is centred at half range.
        half_range = float(info.max) + 1 if info.min < 0 else (float(info.max) + 1) / 2
        offset = 0.0 if info.min < 0 else half_range
        return ((array.astype(np.float64) - offset) / half_range).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise InputError(f"audio samples have type {array.dtype}; pass float or integer PCM samples")


def to_channels_first(waveform: WaveformLike) -> np.ndarray:
    """(channels, samples) float32 from any of the accepted layouts."""
    array = _as_array(waveform)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise InputError(
                f"audio is a batch of {array.shape[0]} tracks; Hallo animates one, so pass a single track "
                "(batch size 1, e.g. a ComfyUI AUDIO straight from Load Audio)"
            )
        array = array[0]
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise InputError(
            f"audio has shape {array.shape}; expected (samples,), (channels, samples) or (1, channels, samples)"
        )
    if array.shape[0] > _MAX_CHANNELS and array.shape[1] <= _MAX_CHANNELS:
        array = array.T  # (samples, channels), as soundfile and scipy.io.wavfile return it
    return _as_float(array)


def check_sample_rate(sample_rate: Any) -> int:
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0 or rate != sample_rate:
        raise InputError(f"audio sample rate {sample_rate!r} is not a positive whole number of Hz")
    return rate


def to_mono_16k(waveform: WaveformLike, sample_rate: int, min_samples: int = 1) -> np.ndarray:
    """Checked mono float32 at 16 kHz: channels averaged, resampled, NaN/inf refused, silence warned about.

    min_samples: the shortest result accepted (the caller passes one video frame's worth).
    """
    rate = check_sample_rate(sample_rate)
    channels = to_channels_first(waveform)
    if not np.isfinite(channels).all():
        raise InputError(
            "audio contains NaN or infinite samples; pass a clean waveform "
            "(check the decoder or effect that produced it)"
        )
    mono = resample(channels.mean(axis=0), rate, SAMPLE_RATE)
    if mono.shape[-1] < min_samples:
        raise InputError(
            f"audio is {1000 * mono.shape[-1] / SAMPLE_RATE:.1f} ms long, shorter than one video frame "
            f"({1000 * min_samples / SAMPLE_RATE:.0f} ms); pass longer speech"
        )
    warn_if_silent(mono)
    return mono


def warn_if_silent(mono: np.ndarray) -> bool:
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak < SILENCE_PEAK:
        message = (
            f"audio is silent (peak {peak:.1e}): the mouth will not move; pass audio with speech "
            "(or check the volume / the vocal separation)"
        )
        warnings.warn(message, HalloWarning, stacklevel=3)
        return True
    return False
