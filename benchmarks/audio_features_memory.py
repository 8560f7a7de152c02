"""Peak memory (RSS) of encoding long audio into Hallo's wav2vec2 features, on the CPU.

    python -m benchmarks.audio_features_memory --seconds 600 --wav2vec ../shared/parity/models/wav2vec2
    python -m benchmarks.audio_features_memory --seconds 600 --random-base   # full-size wav2vec2-base, random

Prints one JSON line: peak RSS of the process (everything: libraries, weights, audio, result),
RSS after loading (libraries; safetensors weights are memory-mapped and count once touched), and
the size of the result, which any implementation has to hold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.host_memory import peak_rss_mib, rss_mib
from hallo_pipeline.audio.features import AudioEncoder


def random_base(folder: Path) -> Path:
    """wav2vec2-base-960h's architecture with random weights (no download)."""
    import transformers

    config = transformers.Wav2Vec2Config()  # the defaults are wav2vec2-base
    transformers.Wav2Vec2ForCTC(config).save_pretrained(str(folder))
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(str(folder))
    return folder


def speechlike(samples: int) -> np.ndarray:
    """A 220 Hz tone with a 3 Hz envelope plus noise, built second by second (float32 only)."""
    rng = np.random.default_rng(0)
    audio = np.empty(samples, dtype=np.float32)
    for start in range(0, samples, 16000):
        t = np.arange(start, min(samples, start + 16000), dtype=np.float32) / 16000
        piece = 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 220 * t)
        audio[start : start + t.size] = piece + 0.01 * rng.standard_normal(t.size, dtype=np.float32)
    return audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--wav2vec", type=Path, help="a wav2vec2 Hugging Face folder")
    parser.add_argument("--random-base", action="store_true", help="use a random full-size wav2vec2-base")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="Hallo2 mode (60)")
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = random_base(Path(tmp) / "w2v") if args.random_base else args.wav2vec
        encoder = AudioEncoder(folder)
        audio = speechlike(int(args.seconds * 16000))
        loaded = rss_mib()
        start = time.perf_counter()
        features = encoder.encode(audio, 16000, clip_length=args.clip_length, chunk_seconds=args.chunk_seconds)
        seconds = time.perf_counter() - start
        buffer = features.hidden_states
        result = {
            "audio_seconds": args.seconds,
            "model": "random wav2vec2-base" if args.random_base else str(folder),
            "hidden_size": encoder.hidden_size,
            "layers": encoder.layers,
            "frames": features.padded_frames,
            "chunk_seconds": args.chunk_seconds,
            "threads": args.threads,
            "rss_after_load_mib": round(loaded, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "result_mib": round((buffer.shape[0] + 4) * buffer.shape[1] * buffer.shape[2] * 4 / 2**20, 1),
            "encode_seconds": round(seconds, 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
