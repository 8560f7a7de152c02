"""Command line: `python -m hallo_pipeline {animate, make-tiny-models, download}`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import ATTENTION_OPTIONS
from .errors import HalloError
from .signals import Terminated, terminate_as_interrupt


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hallo_pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("animate", help="portrait + speech -> mp4 with sound")
    a.add_argument("--image", required=True, type=Path, help="portrait (square works best, face 50-70%% of the frame)")
    a.add_argument("--audio", required=True, type=Path, help="speech: any format PyAV/FFmpeg reads (wav, mp3, m4a, ...)")
    a.add_argument("--output", required=True, type=Path,
                   help="video to write: .mp4 (or .mov, .mkv), written under a temporary name first; "
                   "checked before anything is loaded")
    a.add_argument("--models", type=Path, default=Path("models/hallo"), help="model folder in the official layout")
    a.add_argument("--steps", type=_positive_int, default=40, help="DDIM steps (default 40)")
    a.add_argument("--cfg", type=float, default=3.5, help="guidance scale (default 3.5)")
    a.add_argument("--seed", type=int, default=42, help="noise seed (default 42); same seed, same video on any device")
    a.add_argument("--pose-weight", type=float, default=1.0, help="strength of the audio on head pose")
    a.add_argument("--face-weight", type=float, default=1.0, help="strength of the audio on expression")
    a.add_argument("--lip-weight", type=float, default=1.0, help="strength of the audio on the lips")
    a.add_argument("--size", type=int, default=512, help="working resolution, a multiple of 64 (default 512)")
    a.add_argument("--clip-length", type=_positive_int, default=16, help="frames per clip (default 16, as trained)")
    a.add_argument("--face-expand-ratio", type=float, default=1.2, help="face box enlargement (default 1.2)")
    a.add_argument("--hallo2", action="store_true", help="long-video mode with hallo2/net.pth (60 s audio chunks, motion-frame drop)")
    a.add_argument("--separate-vocals", action="store_true", help="isolate the voice first (needs audio_separator/Kim_Vocal_2.onnx)")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"], help="precision (auto: fp16 on GPU, fp32 on CPU)")
    a.add_argument("--low-vram", action="store_true", help="keep the VAE, ReferenceNet and audio encoder off the GPU while idle")
    a.add_argument("--attention", default="auto", choices=ATTENTION_OPTIONS,
                   help="attention kernel: auto/sdpa = PyTorch's scaled_dot_product_attention; flash = FlashAttention-3 "
                   "or -2, sage = SageAttention (both need their package, a CUDA GPU and fp16/bf16)")
    a.add_argument("--compile", action="store_true",
                   help="torch.compile the denoising UNet; the first denoising step pays the compile time")

    t = sub.add_parser("make-tiny-models", help="write a complete model folder with tiny random weights (for trying the pack without the real weights)")
    t.add_argument("dir", type=Path)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--mediapipe-wheel", type=Path, default=None,
                   help="a mediapipe 0.10.21 wheel file to take the face landmark models from (default: the installed "
                   "mediapipe if it has them, else `pip download mediapipe==0.10.21 --no-deps`, about 35 MB)")
    t.add_argument("--no-face-landmarker", action="store_true",
                   help="write no face landmarker .task (landmarks then need mediapipe==0.10.21's built-in face mesh)")

    d = sub.add_parser("download", help="fetch the official files from Hugging Face into a model folder")
    d.add_argument("dir", type=Path, help="model folder, e.g. ComfyUI/models/hallo")
    d.add_argument("--hallo2", action="store_true", help="also fetch hallo2/net.pth (long videos)")
    d.add_argument("--no-vocal-separator", action="store_true", help="skip audio_separator/Kim_Vocal_2.onnx")
    return parser


class _ProgressBar:
    """One line, rewritten in place: clip, step, elapsed and remaining time."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.start = stream, time.monotonic()

    def __call__(self, p) -> None:
        elapsed = time.monotonic() - self.start
        eta = elapsed / p.done * (p.total - p.done)
        self.stream.write(
            f"\rclip {p.clip + 1}/{p.clips}  step {p.step}/{p.steps}  "
            f"[{p.done}/{p.total}] {elapsed:6.1f}s elapsed, {eta:6.1f}s left "
        )
        self.stream.flush()
        if p.done == p.total:
            self.stream.write("\n")


def _animate(args: argparse.Namespace) -> int:
    from .config import RegionWeights
    from .pipeline import HalloPipeline
    from .video import check_output_path

    # First of all, before gigabytes of weights are read: a bad --output must not cost a run.
    plan = check_output_path(args.output, {"image": args.image, "audio": args.audio})
    if plan.replaces_existing:
        print(f"note: {plan.path} exists; it will be replaced once the new video is complete", file=sys.stderr)
    pipeline = HalloPipeline.load(
        args.models, variant="hallo2" if args.hallo2 else "auto", device=args.device, dtype=args.dtype,
        low_vram=args.low_vram, attention=args.attention, compile=args.compile,
    )
    settings = pipeline.settings(
        mode="hallo2" if args.hallo2 else "auto", steps=args.steps, guidance_scale=args.cfg, seed=args.seed,
        clip_length=args.clip_length,
        weights=RegionWeights(pose=args.pose_weight, face=args.face_weight, lip=args.lip_weight),
    )
    out = pipeline.animate(
        args.image, args.audio, plan.path, settings, image_size=args.size,
        face_expand_ratio=args.face_expand_ratio, separate_vocals=args.separate_vocals, progress=_ProgressBar(),
    )
    print(f"wrote {out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "animate":
        return _animate(args)
    if args.command == "make-tiny-models":
        from .testing.tiny_models import make_tiny_models

        root = make_tiny_models(args.dir, seed=args.seed, face_landmarker=not args.no_face_landmarker,
                                mediapipe_wheel=args.mediapipe_wheel)
        print(f"wrote tiny model folder {root}")
        return 0
    if args.command == "download":
        from .download import download

        root = download(args.dir, hallo=True, hallo2=args.hallo2, vocal_separator=not args.no_vocal_separator)
        print(f"model folder ready: {root}")
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # SIGTERM (kill, a scheduler, a container stop) unwinds like Ctrl-C, so partial files go.
        with terminate_as_interrupt():
            return _run(args)
    except HalloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("\nterminated; no output was left behind", file=sys.stderr)
        return 143  # 128 + SIGTERM, what a shell reports for a process the signal killed
    except KeyboardInterrupt:
        print("\ncancelled; no output was left behind", file=sys.stderr)
        return 130
