"""Sample-rate conversion with SciPy's polyphase filter (numpy only: no torchaudio, no ffmpeg)."""

from __future__ import annotations

from math import gcd

import numpy as np

from .._optional import require


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the last axis; float32 out. Exact rational ratio, so lengths are
    `ceil(n * to_rate / from_rate)` and a tone keeps its frequency and level."""
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return samples
    signal = require("scipy.signal", "scipy", "Resampling the audio")
    common = gcd(int(from_rate), int(to_rate))
    up, down = int(to_rate) // common, int(from_rate) // common
    return signal.resample_poly(samples, up, down, axis=-1).astype(np.float32)
