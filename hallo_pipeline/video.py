"""Writing the result: mp4 with h264 video and AAC audio through PyAV, streamed frame by frame.

A video is written under a temporary name beside the target and renamed only when it is
complete, so a failed or cancelled run never leaves a file that looks finished.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

# Sample rates the AAC encoder accepts; others are resampled to 48 kHz.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (rounded, as image writers do)."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _audio_for_aac(waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """(C, T) float -> (C', T') float32 with C' in {1, 2} and an AAC-compatible rate."""
    audio = np.asarray(waveform, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.shape[0] > 2:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate not in AAC_RATES:
        from scipy.signal import resample_poly

        g = math.gcd(int(sample_rate), 48000)
        audio = resample_poly(audio, 48000 // g, int(sample_rate) // g, axis=1).astype(np.float32)
        sample_rate = 48000
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0)), sample_rate


class VideoWriter:
    """Stream frames into `path` (mp4: h264 yuv420p + AAC). Use as a context manager.

    The audio, if given, is the original track; at `close()` it is cut to the video's length.
    """

    def __init__(
        self,
        path: str | Path,
        fps: int = 25,
        audio: np.ndarray | torch.Tensor | None = None,
        sample_rate: int | None = None,
        crf: int = 18,
    ):
        import av

        self.path = Path(path)
        self.fps = fps
        self.frames_written = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._video = None
        self._crf = crf
        self._audio = None
        if audio is not None:
            if sample_rate is None:
                raise ValueError("sample_rate is required with audio")
            data = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
            self._audio_data, self._audio_rate = _audio_for_aac(data, int(sample_rate))
            self._audio = self._container.add_stream("aac", rate=self._audio_rate)
            self._audio.layout = "mono" if self._audio_data.shape[0] == 1 else "stereo"

    def _open_video(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"h264 needs even frame sizes, got {width}x{height}")
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(self._crf)}

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """frames: (N, 3, H, W) float in [0, 1], or (N, H, W, 3) uint8."""
        import av

        pixels = frames_to_uint8(frames) if isinstance(frames, torch.Tensor) else np.asarray(frames, dtype=np.uint8)
        if self._video is None:
            self._open_video(pixels.shape[1], pixels.shape[2])
        for rgb in pixels:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in self._video.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def _write_audio(self) -> None:
        import av

        length = int(round(self.frames_written / self.fps * self._audio_rate))
        data = self._audio_data[:, :length]
        size = self._audio.codec_context.frame_size or 1024
        for start in range(0, data.shape[1], size):
            chunk = np.ascontiguousarray(data[:, start : start + size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._audio.layout.name)
            frame.sample_rate = self._audio_rate
            frame.pts = start
            for packet in self._audio.encode(frame):
                self._container.mux(packet)
        for packet in self._audio.encode(None):
            self._container.mux(packet)

    def close(self) -> Path:
        """Flush, mux the audio cut to the video length, and move the file to its final name."""
        if self._video is None:
            self.abort()
            raise ValueError("no frames were written")
        for packet in self._video.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            self._write_audio()
        self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be half-initialised; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_video_info(path: str | Path) -> dict:
    """Codec names, frame rate, frame count and stream durations of a written file (for checks)."""
    import av

    with av.open(str(path)) as container:
        info: dict = {}
        if container.streams.video:
            v = container.streams.video[0]
            info["video_codec"] = v.codec_context.name
            info["fps"] = Fraction(v.average_rate) if v.average_rate else None
            info["frames"] = sum(1 for _ in container.decode(video=0))
            info["width"], info["height"] = v.width, v.height
        container.seek(0)
        if container.streams.audio:
            a = container.streams.audio[0]
            info["audio_codec"] = a.codec_context.name
            info["sample_rate"] = a.codec_context.sample_rate
            samples = sum(f.samples for f in container.decode(audio=0))
            info["audio_seconds"] = samples / a.codec_context.sample_rate
    return info
