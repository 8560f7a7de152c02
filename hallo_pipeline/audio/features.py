"""wav2vec2 features of the driving audio, framed the way Hallo consumes them (SPEC §8, §10).

    encoder = AudioEncoder.from_models_dir("ComfyUI/models/hallo")
    audio = encoder.encode(waveform, sample_rate, clip_length=16)
    audio.features          # (padded_frames, 5, 12, 768): frames i-2..i+2 of all 12 layers
    audio.clip(0, 16)       # the AudioProj input of clip 0, (16, 5, 12, 768)

Per frame of 25 fps video: 640 samples of 16 kHz audio. The features cover a whole number of
clips (the last one padded with silence, by Hallo's or Hallo2's rule: `final_chunk_padding`);
`frames` is the true length the video is cut to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..config import FPS
from ..errors import CheckpointError, InputError
from .io import SAMPLE_RATE, WaveformLike, to_mono_16k
from .wav2vec import (
    WAV2VEC_DIR,
    cnn_features,
    load_wav2vec2,
    project_features,
    read_preprocessor_config,
    receptive_field,
    transformer_layers,
)

if TYPE_CHECKING:
    from .separation import VocalSeparator

WINDOW_RADIUS = 2  # each frame sees frames i-2 .. i+2
HALLO2_CHUNK_SECONDS = 60
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean / unit-variance epsilon


def frame_count(samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """Video frames for `samples` of audio: ceil(samples / sample_rate * fps).

    Computed in floating point like the release; at a few exact multiples of 640 samples the
    rounding adds one frame (e.g. 4480 samples -> 8 frames), which we keep for parity.
    """
    return math.ceil(samples / sample_rate * fps)


def padded_frame_count(frames: int, clip_length: int) -> int:
    """`frames` rounded up to whole clips: the rows of `AudioFeatures.features`."""
    return frames + (-frames) % clip_length


def final_chunk_padding(chunk_frames: Sequence[int], clip_length: int, hallo2: bool) -> int:
    """Frames of silence appended to the last chunk before its wav2vec2 pass (SPEC §8, §10).

    chunk_frames: each chunk's own frame count (one entry when the audio is not chunked).
    Hallo: pad the total T to whole clips. Hallo2 (the release's rule, exactly): only if the last
    chunk's own count s is not whole clips, and then by F - (T mod F), a whole clip of silence when
    T already is whole clips; if s is whole clips nothing is padded, even when T is not.
    """
    total = sum(chunk_frames)
    if not hallo2:
        return (-total) % clip_length
    if chunk_frames[-1] % clip_length == 0:
        return 0
    return clip_length - total % clip_length


def normalize_waveform(samples: np.ndarray, pad: int = 0) -> np.ndarray:
    """Zero mean, unit variance (population variance, eps 1e-7), as Wav2Vec2FeatureExtractor;
    followed by `pad` zeros. Written into one array: long audio is not copied more than once."""
    x = np.asarray(samples, dtype=np.float32)
    out = np.zeros(x.shape[0] + pad, dtype=np.float32)
    np.subtract(x, x.mean(), out=out[: x.shape[0]])
    out[: x.shape[0]] /= np.sqrt(x.var() + NORMALIZE_EPS)
    return out


@dataclass
class AudioFeatures:
    """wav2vec2 features of one audio, on the CPU in float32.

    `features` and `hidden_states` are views of one (computed_rows + 4, layers, hidden) buffer
    (the two edge frames repeated at each end), so the 5-frame windows cost no extra memory.
    Both hold `padded_frames` rows, the whole clips the sampler renders; see `AudioEncoder.encode`
    for the rows past the true length `frames`.
    Take clips with `clip()` before moving data to a device: moving `features` as a whole
    would materialise all five copies.
    """

    features: torch.Tensor  # (padded_frames, 5, layers, hidden)
    hidden_states: torch.Tensor  # (padded_frames, layers, hidden): every transformer layer's output
    frames: int  # true length in video frames (the video is cut to this)
    padded_frames: int  # a whole number of clips
    waveform: torch.Tensor  # (samples,) the mono 16 kHz audio that was encoded (after vocal separation)
    sample_rate: int = SAMPLE_RATE

    def clip(self, index: int, clip_length: int) -> torch.Tensor:
        """(clip_length, 5, layers, hidden) contiguous features of clip `index`."""
        start = index * clip_length
        if index < 0 or start + clip_length > self.padded_frames:
            raise IndexError(f"clip {index} of length {clip_length} is outside {self.padded_frames} frames")
        return self.features[start : start + clip_length].contiguous()


def windowed(hidden_with_edges: torch.Tensor) -> torch.Tensor:
    """(T + 4, L, H) with edge frames repeated -> (T, 5, L, H) view: row i holds frames i-2..i+2, clamped."""
    return hidden_with_edges.unfold(0, 2 * WINDOW_RADIUS + 1, 1).permute(0, 3, 1, 2)


class AudioEncoder:
    """A wav2vec2 folder loaded once; `encode` turns any waveform into Hallo's audio features."""

    def __init__(
        self,
        wav2vec_dir: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        fps: int = FPS,
        cnn_chunk_frames: int = 500,
    ):
        self.folder = Path(wav2vec_dir)
        self.device, self.dtype, self.fps = torch.device(device), dtype, fps
        self.cnn_chunk_frames = cnn_chunk_frames
        preprocessor = read_preprocessor_config(self.folder)
        self.sample_rate = int(preprocessor.get("sampling_rate", SAMPLE_RATE))
        if self.sample_rate != SAMPLE_RATE:
            raise CheckpointError(
                f"wav2vec2 folder {str(self.folder)!r} is for {self.sample_rate} Hz audio; Hallo's model "
                f"(wav2vec2-base-960h) works at {SAMPLE_RATE} Hz"
            )
        self.do_normalize = bool(preprocessor.get("do_normalize", True))
        if fps != FPS:
            # Video frames and audio windows must share one clock; the weights fix it at 25.
            raise InputError(f"fps {fps!r} cannot be used: the Hallo weights were trained at {FPS} fps", "fps")
        self.samples_per_frame = SAMPLE_RATE // fps
        self.model = load_wav2vec2(self.folder, self.device, dtype)
        self.receptive_field = receptive_field(self.model.feature_extractor)
        self.layers = len(self.model.encoder.layers)
        self.hidden_size = int(self.model.config.hidden_size)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, **kwargs) -> "AudioEncoder":
        """From the Hallo model folder (laid out like the Hugging Face repo)."""
        return cls(Path(models_dir) / WAV2VEC_DIR, **kwargs)

    # -- the stages, in order (public so that each can be checked on its own) -------------------
    def input_values(self, mono: np.ndarray, pad: int = 0) -> np.ndarray:
        """The model's input: the normalised waveform followed by `pad` zeros (the padding comes
        after the normalisation, as in the release)."""
        if self.do_normalize:
            return normalize_waveform(mono, pad)
        return np.concatenate([np.asarray(mono, dtype=np.float32), np.zeros(pad, dtype=np.float32)])

    def cnn_features(self, input_values: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(1, conv_dim, cnn_frames) at about 50 Hz."""
        values = torch.as_tensor(np.asarray(input_values, dtype=np.float32)).to(self.device, self.dtype)
        if values.numel() < self.receptive_field:
            # Only a Hallo2 chunk can be this short (< 25 ms); the release would fail on it.
            values = F.pad(values, (0, self.receptive_field - values.numel()))
        return cnn_features(self.model.feature_extractor, values, self.cnn_chunk_frames)[None]

    def interpolate(self, cnn: torch.Tensor, frames: int) -> torch.Tensor:
        """(1, conv_dim, cnn_frames) -> (1, frames, conv_dim): linear, align_corners=True."""
        return F.interpolate(cnn, size=frames, mode="linear", align_corners=True).transpose(1, 2)

    def layer_outputs(self, interpolated: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(1, frames, conv_dim) -> (frames, layers, hidden) float32, written into `out` if given."""
        frames = interpolated.shape[1]
        if out is None:
            out = torch.empty(frames, self.layers, self.hidden_size, dtype=torch.float32)
        return transformer_layers(self.model, project_features(self.model, interpolated), out)

    # -- everything at once ----------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self,
        waveform: WaveformLike,
        sample_rate: int,
        clip_length: int = 16,
        *,
        chunk_seconds: float | None = None,
        separator: "VocalSeparator | None" = None,
    ) -> AudioFeatures:
        """Features of a waveform of any rate and channel count (numpy or torch).

        chunk_seconds: Hallo2's long-audio mode (60): each chunk is normalised and encoded on its
            own (wav2vec2 context restarts); only the last chunk may be padded, by the release's
            rule (`final_chunk_padding`). None: one pass (Hallo).
        separator: a `VocalSeparator` to isolate the voice first, as the release does.
        """
        if not isinstance(clip_length, int) or clip_length < 1:
            raise InputError(f"clip_length must be a positive whole number of frames, got {clip_length!r}")
        if separator is not None:
            waveform, sample_rate = separator.separate(waveform, sample_rate)
        mono = to_mono_16k(waveform, sample_rate, min_samples=self.samples_per_frame)
        chunks = list(self._chunks(mono.shape[0], chunk_seconds))
        chunk_frames = [frame_count(stop - start, SAMPLE_RATE, self.fps) for start, stop in chunks]
        frames = sum(chunk_frames)  # T: the true length (per chunk and summed, as the release)
        pad = final_chunk_padding(chunk_frames, clip_length, hallo2=chunk_seconds is not None)
        computed = frames + pad  # rows wav2vec2 produces, silent padding included
        padded = padded_frame_count(frames, clip_length)  # rows rendered: ceil(T / F) whole clips
        # The rows past the true length T, as the two modes and cases leave them:
        #   computed == padded (Hallo always; Hallo2 when it pads and T is not whole clips): the
        #     release's own padded sequence, silent rows included, windows clamped at its end.
        #   computed > padded (Hallo2 pads a whole clip of silence because T is whole clips): the
        #     silent rows are dropped from `features` / `hidden_states` (never rendered), but they stay
        #     in the buffer after row T - 1, so the windows of rows T-2 and T-1 see them as the
        #     release's windows over the whole padded sequence do.
        #   computed < padded (Hallo2 does not pad, the last chunk's own count is whole clips, T is
        #     not): "repeat the last row" means the *hidden-state* sequence is extended by copies of
        #     row T - 1 up to the whole clip, and the windows are taken over that extended sequence.
        #     So every real row's window is exactly the release's (its end clamps to row T - 1 too),
        #     `hidden_states[T:]` equal `hidden_states[T - 1]`, and the window of extra row T + j holds
        #     frames T+j-2 .. T+j+2 of the extended sequence (row T: T-2, T-1, T-1, T-1, T-1; from row
        #     T + 1 on, row T - 1 five times). It is what the buffer's end padding gives for free:
        #     no row of `features` is copied.
        rows = max(computed, padded)
        buffer = torch.empty(rows + 2 * WINDOW_RADIUS, self.layers, self.hidden_size, dtype=torch.float32)
        sequence = buffer[WINDOW_RADIUS : WINDOW_RADIUS + rows]
        start_frame = 0
        for index, ((start, stop), own_frames) in enumerate(zip(chunks, chunk_frames)):
            extra = pad if index == len(chunks) - 1 else 0
            values = self.input_values(mono[start:stop], extra * self.samples_per_frame)
            interpolated = self.interpolate(self.cnn_features(values), own_frames + extra)
            self.layer_outputs(interpolated, out=sequence[start_frame : start_frame + own_frames + extra])
            start_frame += own_frames + extra
        buffer[:WINDOW_RADIUS] = sequence[0]
        buffer[WINDOW_RADIUS + computed :] = sequence[computed - 1]
        return AudioFeatures(
            features=windowed(buffer)[:padded],
            hidden_states=sequence[:padded],
            frames=frames,
            padded_frames=padded,
            waveform=torch.from_numpy(mono),
        )

    def _chunks(self, samples: int, chunk_seconds: float | None):
        """(start, stop) sample ranges: one, or Hallo2's chunks of `chunk_seconds` (the last one shorter)."""
        if chunk_seconds is None:
            yield 0, samples
            return
        size = int(round(chunk_seconds * SAMPLE_RATE))
        if size < self.samples_per_frame or size % self.samples_per_frame:
            raise InputError(
                f"chunk_seconds={chunk_seconds!r} must be a whole number of video frames "
                f"({self.samples_per_frame} samples each); Hallo2 uses {HALLO2_CHUNK_SECONDS}"
            )
        for start in range(0, samples, size):
            yield start, min(samples, start + size)
