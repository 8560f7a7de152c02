"""Small media files for tests, written with the libraries the pack itself uses."""

from __future__ import annotations

from pathlib import Path


def write_samples(path: Path, samples, sr: int) -> Path:
    """(channels, samples) float values in [-1, 1] (one or two channels) as a 16-bit wav (PyAV)."""
    import av
    import numpy as np

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    with av.open(str(path), "w") as c:
        stream = c.add_stream("pcm_s16le", rate=sr)
        stream.layout = "stereo" if data.shape[0] == 2 else "mono"
        # s16 is interleaved: samples of all channels side by side, in one row.
        frame = av.AudioFrame.from_ndarray((data.T * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout=stream.layout.name)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def write_wav(path: Path, seconds: float, sr: int = 22050, channels: int = 2) -> Path:
    """A two-tone 16-bit wav, at a rate the pipeline has to resample."""
    import numpy as np

    t = np.arange(int(seconds * sr)) / sr
    return write_samples(path, np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(channels)]), sr)
