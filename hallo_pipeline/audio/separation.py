"""Optional vocal separation with the MDX-Net model `Kim_Vocal_2.onnx`, as the release runs it
(through the `audio-separator` package), here with onnxruntime and torch's STFT only.

What such a model is: it maps the spectrogram of a 44.1 kHz stereo chunk to the spectrogram of
its vocals. Input and output are (batch, 4, dim_f, dim_t) = real and imaginary parts of the left
and right STFT ([L.re, L.im, R.re, R.im]), Hann window, centred frames, the first `dim_f` of the
n_fft/2 + 1 bins. A chunk is hop * (dim_t - 1) samples. The mix is cut into chunks overlapping by
a quarter, each chunk's output is weighted by a Hann window and the sum divided by the summed
windows; n_fft/2 samples of silence pad the ends. The three lowest bins are zeroed before the
model, the bins above dim_f are zero in the output, and the result is scaled by a per-model
compensation factor. Mix and result are scaled down to a 0.9 peak when louder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._optional import require
from ..errors import CheckpointError, InputError
from .io import WaveformLike, check_sample_rate, to_channels_first
from .resample import resample

SEPARATOR_FILE = Path("audio_separator") / "Kim_Vocal_2.onnx"
MDX_SAMPLE_RATE = 44100
OVERLAP = 0.25
PEAK = 0.9
LOW_BINS_ZEROED = 3


@dataclass(frozen=True)
class MdxParams:
    n_fft: int
    hop: int
    dim_f: int  # frequency bins the model sees (of n_fft // 2 + 1)
    dim_t: int  # STFT frames per chunk
    compensate: float  # gain the model's output is multiplied by

    @property
    def chunk(self) -> int:
        return self.hop * (self.dim_t - 1)

    @property
    def trim(self) -> int:
        return self.n_fft // 2


# UVR's published settings for the models the releases use (hop 1024, 256 frames per chunk).
KNOWN_MODELS = {
    "Kim_Vocal_2.onnx": MdxParams(n_fft=7680, hop=1024, dim_f=3072, dim_t=256, compensate=1.009),
}


def _limit_peak(wave: np.ndarray) -> np.ndarray:
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    return wave * (PEAK / peak) if peak > PEAK else wave


class VocalSeparator:
    """Loads an MDX-Net ONNX model once; `separate` returns the vocals of any waveform."""

    def __init__(
        self,
        model_path: str | Path,
        params: MdxParams | None = None,
        providers: Sequence[str] | None = None,
        overlap: float = OVERLAP,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise CheckpointError(
                f"vocal separator {str(path)!r} not found; download {SEPARATOR_FILE.as_posix()} from the Hugging "
                "Face repo fudan-generative-ai/hallo, or turn vocal separation off"
            )
        params = params or KNOWN_MODELS.get(path.name)
        if params is None:
            raise CheckpointError(
                f"vocal separator {path.name!r} is not one whose settings we know ({', '.join(KNOWN_MODELS)}); "
                "pass its MdxParams (n_fft, hop, dim_f, dim_t, compensate)"
            )
        if not 0 <= overlap < 1:
            raise InputError(f"overlap must be in [0, 1), got {overlap!r}; the release uses {OVERLAP}")
        ort = require("onnxruntime", "onnxruntime", "Vocal separation")
        try:
            self.session = ort.InferenceSession(str(path), providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise CheckpointError(f"vocal separator {str(path)!r} cannot be loaded ({exc}); download it again") from exc
        model_input = self.session.get_inputs()[0]
        expected = [4, params.dim_f, params.dim_t]
        fixed = [d if isinstance(d, int) else None for d in model_input.shape[1:]]
        if len(fixed) != 3 or any(d is not None and d != e for d, e in zip(fixed, expected)):
            raise CheckpointError(
                f"vocal separator {path.name!r} takes input {model_input.shape}, but its settings say "
                f"(batch, {', '.join(map(str, expected))}); it is not the model these settings are for"
            )
        self.input_name = model_input.name
        self.params, self.overlap = params, overlap
        self.window = torch.hann_window(params.n_fft, periodic=True)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, **kwargs) -> "VocalSeparator":
        return cls(Path(models_dir) / SEPARATOR_FILE, **kwargs)

    def separate(self, waveform: WaveformLike, sample_rate: int) -> tuple[np.ndarray, int]:
        """(vocals as float32 (2, samples) at 44.1 kHz, 44100) for a waveform of any rate and layout."""
        rate = check_sample_rate(sample_rate)
        channels = to_channels_first(waveform)
        if not np.isfinite(channels).all():
            raise InputError("audio contains NaN or infinite samples; pass a clean waveform")
        if channels.shape[0] != 2:  # the model is stereo: mono is doubled, more channels are mixed down
            channels = np.repeat(channels.mean(axis=0, keepdims=True), 2, axis=0)
        mix = _limit_peak(resample(channels, rate, MDX_SAMPLE_RATE))
        vocals = self._demix(mix) * self.params.compensate
        return _limit_peak(vocals).astype(np.float32), MDX_SAMPLE_RATE

    def _demix(self, mix: np.ndarray) -> np.ndarray:
        p = self.params
        samples = mix.shape[-1]
        usable = p.chunk - 2 * p.trim
        tail = usable + p.trim - samples % usable
        mixture = np.concatenate(
            [np.zeros((2, p.trim), np.float32), mix.astype(np.float32), np.zeros((2, tail), np.float32)], axis=1
        )
        length = mixture.shape[-1]
        step = int((1 - self.overlap) * p.chunk)
        result = np.zeros((2, length), np.float32)
        weight = np.zeros(length, np.float32)
        for start in range(0, length, step):
            stop = min(start + p.chunk, length)
            piece = np.zeros((2, p.chunk), np.float32)
            piece[:, : stop - start] = mixture[:, start:stop]
            out = self._run_chunk(piece)[:, : stop - start]
            window = np.hanning(stop - start).astype(np.float32) if self.overlap else np.ones(stop - start, np.float32)
            result[:, start:stop] += out * window
            weight[start:stop] += window
        # Only the padding's outermost samples can carry zero weight; they are cut off below.
        np.divide(result, weight, out=result, where=weight > 0)
        return result[:, p.trim : p.trim + samples]

    def _run_chunk(self, piece: np.ndarray) -> np.ndarray:
        p = self.params
        spec = torch.stft(torch.from_numpy(piece), p.n_fft, p.hop, window=self.window, center=True, return_complex=True)
        spec = torch.view_as_real(spec)  # (2, bins, frames, re/im)
        model_in = spec.permute(0, 3, 1, 2).reshape(4, -1, spec.shape[2])[:, : p.dim_f]  # [L.re, L.im, R.re, R.im]
        model_in = model_in.clone()
        model_in[:, :LOW_BINS_ZEROED] = 0
        out = self.session.run(None, {self.input_name: model_in[None].numpy()})[0][0]
        bins = p.n_fft // 2 + 1
        full = torch.zeros(4, bins, out.shape[-1])
        full[:, : p.dim_f] = torch.from_numpy(np.ascontiguousarray(out))
        full = full.reshape(2, 2, bins, -1)
        complex_spec = torch.complex(full[:, 0], full[:, 1])
        return torch.istft(complex_spec, p.n_fft, p.hop, window=self.window, center=True, length=p.chunk).numpy()
