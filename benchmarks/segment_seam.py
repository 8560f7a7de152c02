"""The seam of independent segments (issue #14): how much a join moves against an ordinary frame.

    python -m benchmarks.segment_seam                      # tiny random model, CPU -> results/segment-seam-tiny-cpu.*
    python -m benchmarks.segment_seam --models models/hallo --device cuda --size 512 --steps 40 --name real-cuda

The speech is synthetic and the same every run: a 180 Hz tone under a 3 Hz syllable envelope with a 0.8 s
pause 0.2 s after each even split (1.3 s, so that a whole clip-aligned overlap fits in it; the plan's boundary
search moves each cut into it). One portrait
(tests/data/portrait.png). Three videos of the same audio, seed and settings, measured at the same joins with
`independent.seam_ratio` (the largest frame-to-frame change across a join's blend over the video's median
frame-to-frame change; mean absolute difference of the model's square frames in [0, 1]):

- `exact`: the default sequential video, which has no join there (the control: what those frames do anyway);
- `crossfade`: the independent segments joined as `join` does (smoothstep over the plan's overlap);
- `hard cut`: the same segments cut at the boundaries without blending (what the overlap buys).

With the tiny random model the frames are not a face, so the figure only shows the machinery at work; the
figure that matters for users needs the released weights (a GPU run of the second command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def speech(seconds: float, segments: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    voice = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 180 * t)
    for k in range(1, segments):
        at = seconds * k / segments + 0.2
        voice[int(at * SR) : int((at + 1.3) * SR)] = 0.0
    return voice.astype(np.float32)[None]


def measure(args: argparse.Namespace) -> dict:
    from hallo_pipeline.frames import FrameSegment
    from hallo_pipeline.hallo.independent import render_segment
    from hallo_pipeline.hallo.pipeline import HalloPipeline
    from hallo_pipeline.independent import frame_loudness, join, plan_segments, seam_ratio

    models = args.models
    if models is None:
        from hallo_pipeline.hallo.tiny_models import make_tiny_models

        models = make_tiny_models(Path(tempfile.mkdtemp()) / "hallo-tiny")
    pipeline = HalloPipeline.load(models, device=args.device, dtype=args.dtype)
    wave = speech(args.seconds, args.segments)
    settings = pipeline.settings(steps=args.steps, clip_length=args.clip_length, seed=args.seed)
    reference = pipeline.prepare_reference(pipeline.analyze_face(REPO / "tests/data/portrait.png",
                                                                 image_size=args.size))
    audio = pipeline.encode_audio(wave, SR, clip_length=args.clip_length)
    plan = plan_segments(frame_loudness(wave, SR), args.segments, args.clip_length, args.seed)
    started = time.perf_counter()
    exact = pipeline.sample(reference, audio, settings).frames
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    parts = [render_segment(pipeline, reference, audio, settings, plan, i) for i in range(args.segments)]
    segments_s = time.perf_counter() - started
    crossfade = join(plan, parts)
    # The same boundaries and renders without the blend: each segment's own frames, nothing of the overlap.
    hard = dataclasses.replace(plan, overlap=0, segments=tuple(dataclasses.replace(s, render_end=s.end)
                                                              for s in plan.segments))
    cut = join(hard, [FrameSegment(p.frames[: s.end - s.start], s.start, p.total_frames, p.fps, None)
                      for p, s in zip(parts, plan.segments)])
    loud = frame_loudness(wave, SR)
    return {
        "models": str(args.models or "tiny random (make-tiny-models)"), "device": args.device, "dtype": args.dtype,
        "size": args.size, "steps": args.steps, "clip_length": args.clip_length, "seed": args.seed,
        "seconds": args.seconds, "frames": plan.total_frames, "segments": args.segments, "overlap": plan.overlap,
        "boundaries": plan.boundaries,
        "blend_loudness": [float(loud[b : b + plan.overlap].max()) for b in plan.boundaries],
        "speech_loudness_median": float(np.median(loud)),
        "seam_ratio": {"exact": seam_ratio(exact, plan), "crossfade": seam_ratio(crossfade, plan),
                       "hard cut": seam_ratio(cut, hard)},
        "seconds_exact": round(exact_s, 2), "seconds_all_segments": round(segments_s, 2),
        "host": platform.platform(), "torch": torch.__version__,
    }


def markdown(r: dict) -> str:
    rows = "\n".join(f"| {k} | {v:.2f} |" for k, v in r["seam_ratio"].items())
    return (
        f"# Seam of independent segments ({r['models']}, {r['device']} {r['dtype']})\n\n"
        f"{r['seconds']} s of synthetic speech ({r['frames']} frames), {r['segments']} segments, cuts at frames "
        f"{r['boundaries']}, overlap {r['overlap']} frames (smoothstep), {r['size']} px, {r['steps']} steps, clip "
        f"{r['clip_length']}, seed {r['seed']}. Loudest blended frame (RMS): {r['blend_loudness']} (speech median "
        f"{r['speech_loudness_median']:.3f}).\n\n"
        "Seam ratio = largest frame-to-frame change across a join / median frame-to-frame change:\n\n"
        f"| video | seam ratio |\n|---|---|\n{rows}\n\n"
        f"Render time: exact video {r['seconds_exact']} s, all segments one after another "
        f"{r['seconds_all_segments']} s (the overlap clips are the extra work).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=None, help="model folder (default: a fresh tiny one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", default="tiny-cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"segment-seam-{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"segment-seam-{args.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
