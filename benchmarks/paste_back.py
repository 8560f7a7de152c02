"""Host memory and seconds of pasting generated frames back into a large photo (framing, issue #11).

    python -m benchmarks.paste_back          # 4000x3000 photo, 25 to 1000 frames -> results/paste-back-cpu.*
    python -m benchmarks.paste_back --cases paste:250:0,write:250:1920 --name quick --out /tmp/bench

The photo is synthetic: a smooth three-colour gradient with grain (Gaussian noise, sigma 4 grey
levels, like a camera's), built in strips so that making it never needs more memory than the photo
itself. The face box is 30 % of the photo's height (900 px in a 4000x3000 photo, 0.78 as wide),
a little above the centre; the crop is `choose_framing`'s square at the default crop scale. Frames
are made one at a time, 512x512 like the model's: the crop as the model sees it, moved a few pixels
from frame to frame, with fresh grain each frame (generated video is never static, and the grain
costs the h264 encoder what real motion would). Making a frame is not timed; nothing holds more
than one frame.

A case is `what:frames:max_side`: `paste` times `PasteBack.paste` alone, `write` also streams every
pasted frame into an mp4 through `VideoWriter` (h264, crf 18, no audio), as `HalloPipeline.animate`
does. `max_side` 0 keeps the photo's size; 1920 is the cap a user would pick for a Full HD video. The
default cases take about 7 minutes on 2 CPU cores, most of it h264 at 4000x3000.

Each case runs in a fresh Python process, so its peak RSS is its own. Reported per case: RSS after the
imports (numpy, PIL, PyAV, torch through `hallo_pipeline.video`); the rise to the case's peak from there
(photo, background, frames, encoder: everything the run holds); and the loop's rise: its own peak less
the RSS once the photo and the `PasteBack` are built. The loop's peak is told apart from the setup's by
restarting the kernel's high-water mark (`/proc/self/clear_refs`); where that is not allowed the loop's
rise is an upper bound (the whole peak) and says so. A peak that stops growing with the number of frames
is the streaming promise kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing  # noqa: E402

from benchmarks.host_memory import high_water_mib, peak_rss_mib, reset_high_water, rss_mib  # noqa: E402

WIDTH, HEIGHT = 4000, 3000
FRAME_SIZE = 512
# The face box as fractions of the photo: centre x, centre y, height (of the photo's height), width / height.
FACE = (0.5, 0.43, 0.3, 0.78)
GRAIN = 4.0  # the photo's noise, grey levels
FRAME_GRAIN = 3.0  # the frames' fresh noise per frame
STRIP = 128  # rows of the photo made at a time
DEFAULT_CASES = ",".join([
    "paste:250:0", "paste:25:0", "paste:250:1920", "paste:25:1920",
    "write:250:0", "write:100:0", "write:25:0", "write:250:1920", "write:25:1920", "write:4000:640", "write:250:640",
])


def face_box(width: int, height: int) -> tuple[float, float, float, float]:
    cx, cy, h, aspect = FACE
    half_w, half_h = aspect * h * height / 2, h * height / 2
    return cx * width - half_w, cy * height - half_h, cx * width + half_w, cy * height + half_h


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient (red across, green down, blue along the diagonal) with grain, uint8 RGB."""
    rng = np.random.default_rng(seed)
    photo = np.empty((height, width, 3), dtype=np.uint8)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    for top in range(0, height, STRIP):
        y = (np.arange(top, min(height, top + STRIP), dtype=np.float32) / max(1, height - 1))[:, None]
        strip = rng.standard_normal((y.shape[0], width, 3), dtype=np.float32) * GRAIN
        strip[..., 0] += 60 + 150 * x
        strip[..., 1] += 50 + 140 * y
        strip[..., 2] += 200 - 45 * (x + y)
        photo[top : top + y.shape[0]] = np.clip(np.rint(strip), 0, 255)
    return photo


def synthetic_frame(view: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """The model's view moved by a few pixels (a slow sway), with fresh grain."""
    dy, dx = round(4 * np.sin(index / 5)), round(3 * np.cos(index / 7))
    moved = np.roll(view, (dy, dx), axis=(0, 1)).astype(np.int16)
    moved += np.rint(rng.standard_normal(moved.shape, dtype=np.float32) * FRAME_GRAIN).astype(np.int16)
    return np.clip(moved, 0, 255).astype(np.uint8)


def measure(what: str, frames: int, max_side: int, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """One case, in this process: call it in a fresh one for a peak RSS of its own."""
    import av  # noqa: F401  (imported by VideoWriter; here so that the baseline holds it)

    from hallo_pipeline.framing import PasteBack, choose_framing, crop_to_square
    from hallo_pipeline.video import VideoWriter

    if what not in ("paste", "write"):
        raise ValueError(f"a case is paste or write, got {what!r}")
    after_imports = rss_mib()
    photo = synthetic_photo(width, height)
    framing = choose_framing(face_box(width, height), width, height)
    start = time.perf_counter()
    paste = PasteBack(photo, framing, max_side=max_side)
    setup_seconds = time.perf_counter() - start
    view = crop_to_square(photo, framing, FRAME_SIZE)
    ready, setup_peak = rss_mib(), high_water_mib()
    isolated = reset_high_water()  # from here the high-water mark is the loop's own
    rng = np.random.default_rng(1)
    paste_seconds = write_seconds = making_cpu = 0.0
    mp4_bytes = None
    cpu_start = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(Path(tmp) / "pasted.mp4") if what == "write" else None
        for index in range(frames):
            making = time.thread_time()
            frame = synthetic_frame(view, index, rng)
            making_cpu += time.thread_time() - making
            start = time.perf_counter()
            pixels = paste.paste(frame)
            pasted = time.perf_counter()
            paste_seconds += pasted - start
            if writer is not None:
                writer.write(pixels[None])
                write_seconds += time.perf_counter() - pasted
            del frame, pixels
        if writer is not None:
            start = time.perf_counter()
            mp4_bytes = writer.close().stat().st_size
            write_seconds += time.perf_counter() - start
    # CPU time of every thread (x264's too) in the loop, less this thread's time making the frames.
    cpu_seconds = time.process_time() - cpu_start - making_cpu
    loop_peak = high_water_mib()
    peak = max(setup_peak, loop_peak, peak_rss_mib() if not isolated else 0.0)
    total = paste_seconds + write_seconds
    return {
        "what": what,
        "frames": frames,
        "max_side": max_side,
        "photo": [width, height],
        "output": list(paste.size),
        "crop_side": framing.side,
        "setup_seconds": setup_seconds,
        "paste_seconds": paste_seconds,
        "write_seconds": write_seconds if writer is not None else None,
        "seconds": total,
        "seconds_per_frame": total / frames,
        "paste_seconds_per_frame": paste_seconds / frames,
        "cpu_seconds": cpu_seconds,
        "cpu_seconds_per_frame": cpu_seconds / frames,
        "mp4_bytes": mp4_bytes,
        "rss_after_imports_mib": after_imports,
        "rss_ready_mib": ready,
        "peak_rss_mib": peak,
        "peak_over_imports_mib": peak - after_imports,
        "loop_peak_rss_mib": loop_peak,
        "loop_rise_mib": loop_peak - ready,
        "loop_peak_isolated": isolated,
    }


def parse_cases(text: str) -> list[tuple[str, int, int]]:
    cases = []
    for item in text.split(","):
        what, frames, max_side = item.split(":")
        cases.append((what, int(frames), int(max_side)))
    return cases


def run_case(case: tuple[str, int, int], width: int, height: int) -> dict:
    """`measure` in a fresh interpreter."""
    what, frames, max_side = case
    argv = [sys.executable, "-m", "benchmarks.paste_back", "--one", f"{what}:{frames}:{max_side}",
            "--width", str(width), "--height", str(height)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"case {what}:{frames}:{max_side} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "cpus": cpus, "system": platform.system()}


def versions() -> dict:
    import av
    import PIL
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
            "av": av.__version__, "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "torch": torch.__version__}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="what:frames:max_side, comma-separated")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="paste-back-cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single case in this process (the worker)
    args = parser.parse_args(argv)
    if args.one:
        (case,) = parse_cases(args.one)
        print(json.dumps(measure(*case, width=args.width, height=args.height)))
        return 0

    from hallo_pipeline.framing import choose_framing
    from hallo_pipeline.video import X264_THREADS

    framing = choose_framing(face_box(args.width, args.height), args.width, args.height)
    result = {
        "name": args.name,
        "command": " ".join(["python -m benchmarks.paste_back",
                             *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "versions": versions(),
        "setup": {
            "photo": f"synthetic {args.width}x{args.height}: smooth gradient with grain (sigma {GRAIN:g})",
            "face_box": [round(v, 1) for v in face_box(args.width, args.height)],
            "framing": {"x0": framing.x0, "y0": framing.y0, "side": framing.side, "crop_scale": framing.crop_scale},
            "frame_size": FRAME_SIZE,
            "frames": f"the {FRAME_SIZE}x{FRAME_SIZE} crop swaying by a few pixels, fresh grain (sigma "
                      f"{FRAME_GRAIN:g}) each frame, made one at a time and not timed",
            "paste_options": "PasteBack defaults (feather 0.05, colour match on)",
            "video": f"VideoWriter: h264 yuv420p, crf 18, 25 fps, {X264_THREADS} x264 frame threads, no audio",
        },
        "cases": [],
    }
    for case in parse_cases(args.cases):
        result["cases"].append(run_case(case, args.width, args.height))
        print(markdown_row(result["cases"][-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


HEADER = ("| case | frames | output | s total | s per frame | of which paste | CPU s per frame | peak RSS MiB "
          "| rise over imports MiB | rise in the loop MiB |")


def markdown_row(c: dict) -> str:
    what = "paste" if c["what"] == "paste" else "paste + h264"
    loop = f"{c['loop_rise_mib']:.0f}" + ("" if c["loop_peak_isolated"] else " (at most)")
    return (f"| {what} | {c['frames']} | {c['output'][0]}x{c['output'][1]} | {c['seconds']:.1f} "
            f"| {c['seconds_per_frame']:.3f} | {c['paste_seconds_per_frame']:.3f} | {c['cpu_seconds_per_frame']:.3f} "
            f"| {c['peak_rss_mib']:.0f} "
            f"| {c['peak_over_imports_mib']:.0f} | {loop} |")


def markdown(r: dict) -> str:
    m, v, s = r["machine"], r["versions"], r["setup"]
    f = s["framing"]
    imports = min(c["rss_after_imports_mib"] for c in r["cases"]) if r["cases"] else float("nan")
    lines = [
        f"# {r['name']}",
        "",
        f"`{r['command']}`",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}); Python {v['python']}, numpy {v['numpy']}, Pillow {v['pillow']}, "
        f"PyAV {v['av']} (libavcodec {v['libavcodec']}), torch {v['torch']}",
        "",
        f"{s['photo']}; face box {s['face_box']}, crop {f['side']}x{f['side']} at ({f['x0']}, {f['y0']}), "
        f"crop scale {f['crop_scale']:g}; frames: {s['frames']}; {s['paste_options']}; {s['video']}.",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
        *map(markdown_row, r["cases"]),
        "",
        f"- Each case ran in a fresh process; RSS after the imports was about {imports:.0f} MiB. 'Rise over "
        "imports' counts everything the case held at its peak (the photo, the background, one output frame, "
        "the encoder); 'rise in the loop' is the peak of the paste (and write) loop alone, less the RSS once "
        "the photo and the PasteBack were built.",
        "- Seconds are wall-clock time of paste-back and writing only (making the synthetic frames is not "
        "timed); 'of which paste' is PasteBack.paste alone. 'CPU s' adds up the CPU time of every thread (x264 "
        "runs its own), less the time spent making the frames: it moves less than the wall-clock time when "
        "other work shares the cores.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
