"""Peak host memory (RSS) of a whole `animate` run on a tiny model folder, for a given audio length.

    python -m benchmarks.animate_memory --seconds 10
    python -m benchmarks.animate_memory --seconds 180

Frames are streamed into the mp4 as each clip finishes, so the peak should grow with the audio
(waveform and wav2vec2 features, which any implementation holds) and not with the video.
Needs the parity fixtures' portrait (../shared/parity/inputs/face.png or --image).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.host_memory import peak_rss_mib
from hallo_pipeline.hallo.pipeline import HalloPipeline
from hallo_pipeline.hallo.tiny_models import make_tiny_models

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--image", type=Path, default=REPO.parent / "shared" / "parity" / "inputs" / "face.png")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        models = make_tiny_models(Path(tmp) / "models", hallo2=False)
        pipe = HalloPipeline.load(models, device="cpu")
        sr = 16000
        t = np.arange(int(args.seconds * sr)) / sr
        speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        start = time.perf_counter()
        out = pipe.animate(args.image, (speech[None], sr), Path(tmp) / "out.mp4", pipe.settings(steps=args.steps),
                           image_size=args.size)
        seconds = time.perf_counter() - start
        size = out.stat().st_size
    peak = peak_rss_mib()
    print(json.dumps({"audio_seconds": args.seconds, "peak_rss_mib": round(peak, 1), "run_seconds": round(seconds, 1),
                      "mp4_bytes": size, "size": args.size, "steps": args.steps}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
