"""Command line: `python -m hallo_pipeline {animate, join, make-tiny-models, download, model-list, convert-hallo3}`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from .config import (
    ATTENTION_OPTIONS,
    CLIP_LENGTH,
    CROP_SCALE,
    FACE_EXPAND_RATIO,
    FEATHER,
    FRAMING_OPTIONS,
    GUIDANCE,
    IMAGE_SIZE,
    MAX_SIDE,
    REGION_WEIGHT,
    SEED,
    STEPS,
    Limit,
)
from .errors import HalloError, HalloWarning, InputError
from .families import AUTO, variant_flags, variant_options, variants_help
from .hallo3.config import GUIDANCE as HALLO3_GUIDANCE
from .hallo3.config import STEPS as HALLO3_STEPS
from .hallo3.family import DEFAULT_PROMPT
from .signals import Terminated, terminate_as_interrupt

log = logging.getLogger("hallo_pipeline")


def _option(limit: Limit):
    """An argparse type that checks the value against the setting's one range (config.py)."""

    def parse(text: str):
        try:
            value = int(text) if limit.whole else float(text)
        except ValueError:
            kind = "a whole number" if limit.whole else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        problem = limit.problem(value)
        if problem is not None:  # argparse names the option itself: "argument --seed: ..."
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = limit.name  # argparse names the type in its messages
    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _range(limit: Limit) -> str:
    return f"{limit.low:g}..{limit.high:g}, default {limit.default:g}"


def _family_defaults(hallo: Limit, hallo3: Limit) -> str:
    return f"{hallo.low:g}..{hallo.high:g}, default {hallo.default:g} for Hallo, {hallo3.default:g} for Hallo3"


HALLO_ONLY = "; Hallo only"  # options Hallo3 takes only at their defaults (`hallo3.family.refuse_hallo_options`)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hallo_pipeline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' warnings and debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("animate", help="portrait + speech -> mp4 with sound")
    a.add_argument("--image", required=True, type=Path,
                   help="a photo with one face (any size and aspect ratio; the video keeps them, see --framing)")
    a.add_argument("--audio", required=True, type=Path,
                   help="speech: any format PyAV/FFmpeg reads (wav, mp3, m4a, ...)")
    a.add_argument("--output", required=True, type=Path,
                   help="the .mp4 to write (written under a temporary name first; must not be the image or the audio)")
    a.add_argument("--models", type=Path, default=Path("models/hallo"), help="model folder in the official layout")
    # Default None: the family of the weights fills in its own (`ModelFamily.settings`).
    a.add_argument("--steps", type=_option(STEPS), default=None,
                   help=f"sampler steps ({_family_defaults(STEPS, HALLO3_STEPS)})")
    a.add_argument("--cfg", type=_option(GUIDANCE), default=None,
                   help=f"guidance scale ({_family_defaults(GUIDANCE, HALLO3_GUIDANCE)}); "
                   "with Hallo, 1 or less: no guidance, half the work")
    a.add_argument("--prompt", default=None,
                   help=f"what the video shows, for Hallo3 (default: {DEFAULT_PROMPT!r}); Hallo and Hallo2 take no "
                   "prompt and ignore it")
    a.add_argument("--seed", type=_option(SEED), default=SEED.default,
                   help="noise seed (0..2^64-1, default 42); same seed, same frames on any device")
    for region, what in (("pose", "head pose"), ("face", "expression"), ("lip", "the lips")):
        a.add_argument(f"--{region}-weight", type=_option(REGION_WEIGHT), default=1.0,
                       help=f"strength of the audio on {what} ({_range(REGION_WEIGHT)}){HALLO_ONLY}")
    a.add_argument("--size", type=_option(IMAGE_SIZE), default=IMAGE_SIZE.default,
                   help=f"working resolution, a multiple of 64 ({_range(IMAGE_SIZE)}){HALLO_ONLY}: Hallo3 works "
                   "at its weights' 480x720")
    a.add_argument("--clip-length", type=_option(CLIP_LENGTH), default=CLIP_LENGTH.default,
                   help=f"frames per clip (default 16, as trained; at most 30 with the released weights){HALLO_ONLY}")
    a.add_argument("--face-expand-ratio", type=_option(FACE_EXPAND_RATIO),
                   default=FACE_EXPAND_RATIO.default, help=f"face box enlargement ({_range(FACE_EXPAND_RATIO)})")
    a.add_argument("--framing", default="crop", choices=FRAMING_OPTIONS,
                   help="crop (default): animate the face's surroundings (a square for Hallo, a 3:2 rectangle for "
                   "Hallo3) and paste them back into the whole photo, so the video has the photo's size; stretch: "
                   "what the original releases do: Hallo squeezes the whole photo into a --size square, Hallo3 "
                   "scales and centre-crops it to 720x480 (a square photo gives 480x480), and those frames are the "
                   "video (--max-side, --feather and --no-color-match then stay unset)")
    a.add_argument("--crop-scale", type=_option(CROP_SCALE), default=CROP_SCALE.default,
                   help=f"the crop's shorter side (a square's side), in face heights ({_range(CROP_SCALE)}: "
                   "head, hair and neck)")
    a.add_argument("--max-side", type=_option(MAX_SIDE), default=MAX_SIDE.default,
                   help="cap the video's long side at this many pixels (default 0: the photo's own size); crop only")
    a.add_argument("--feather", type=_option(FEATHER), default=FEATHER.default,
                   help=f"soft edge of the pasted square, a fraction of its side ({_range(FEATHER)}); crop only")
    a.add_argument("--no-color-match", dest="color_match", action="store_false",
                   help="paste the frames back as generated (default: their colours are matched to the photo once, "
                   "from the first frame); crop only")
    a.add_argument("--variant", default=AUTO, choices=variant_options(),
                   help=f"which weights of the model folder to use ({variants_help()})")
    for variant, what in variant_flags().items():
        a.add_argument(f"--{variant}", dest="variant", action="store_const", const=variant,
                       help=f"{what}; the same as --variant {variant}")
    a.add_argument("--separate-vocals", action="store_true",
                   help="isolate the voice first (needs audio_separator/Kim_Vocal_2.onnx)")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                   help="precision (auto: fp32 on CPU; on a GPU the weights' own: fp16 for Hallo, bf16 for Hallo3)")
    a.add_argument("--low-vram", action="store_true",
                   help="less GPU memory. Hallo: keep the VAE, ReferenceNet and audio encoder off the GPU while "
                   "idle. Hallo3 (which on a GPU always brings T5, the reference DiT, the main DiT and the VAE to it "
                   "one at a time): the 16 GB mode, --fp8, --tiled-decode and half of the DiT's layers on the host "
                   "(--offload-blocks changes how many)")
    a.add_argument("--fp8", action="store_true",
                   help="store the big weights in float8 (e4m3, scaled per tensor), upcast layer by layer, for a "
                   "small change to the frames: Hallo, both UNets' Linear and Conv2d weights (4.9 -> 2.5 GB); Hallo3, "
                   "the main DiT's layer weights (18 -> 10 GB)")
    a.add_argument("--offload-blocks", type=int, default=None, metavar="N",
                   help="Hallo3 only: keep N of the main DiT's layers (42 in the release) on the host and copy each "
                   "in for its own forward: less GPU memory, slower, the same frames (default 0, or half with "
                   "--low-vram)")
    a.add_argument("--tiled-decode", action="store_true",
                   help="Hallo3 only: decode the video in spatial tiles (diffusers' CogVideoX tiling): about 4x less "
                   "memory for the decode (16 -> 4 GB), faint differences where the tiles overlap")
    a.add_argument("--attention", default="auto", choices=ATTENTION_OPTIONS,
                   help="attention kernel: auto/sdpa = PyTorch's scaled_dot_product_attention; "
                   "flash = FlashAttention-3 "
                   "or -2, sage = SageAttention (both need their package, a CUDA GPU and fp16/bf16; Hallo only)")
    a.add_argument("--compile", action="store_true",
                   help=f"torch.compile the denoising UNet; the first denoising step pays the compile time{HALLO_ONLY}")
    a.add_argument("--segments", type=_positive, default=None, metavar="N",
                   help="render only one of N independent segments of the audio (with --segment-index), e.g. one "
                   "task of a Slurm array or one Kubernetes job each; --output is then a lossless segment file "
                   "without sound, and `join` blends the N files into the video (give it the photo with --image "
                   "where the frames are crops of it, the default). The cuts lie in pauses of the "
                   f"speech, each segment starts from the portrait (a faint crossfaded seam per cut){HALLO_ONLY}")
    a.add_argument("--segment-index", type=int, default=None, metavar="I",
                   help="which segment to render with --segments N: 0 to N-1")

    j = sub.add_parser("join", help="blend the segment files of `animate --segments N --segment-index i` into the "
                       "video with sound")
    j.add_argument("parts", nargs="+", type=Path, help="every segment file of the video, in any order (part_*)")
    j.add_argument("--audio", required=True, type=Path, help="the speech the segments were rendered from")
    j.add_argument("--image", type=Path, default=None,
                   help="the photo the segments were rendered from, where they are crops of it (framing crop, the "
                   "default): the joined frames are pasted back into it")
    j.add_argument("--output", required=True, type=Path, help="the .mp4 to write (h264 + AAC, 25 fps)")

    t = sub.add_parser("make-tiny-models",
                       help="write a complete model folder with tiny random weights "
                       "(for trying the pack without the real weights)")
    t.add_argument("dir", type=Path,
                   help="a new folder of its own, e.g. models/hallo-tiny (never the folder of the real weights)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--mediapipe-wheel", type=Path, default=None,
                   help="a mediapipe 0.10.21 wheel file to take the face landmark models from (default: the installed "
                   "mediapipe if it has them, else `pip download mediapipe==0.10.21 --no-deps`, about 35 MB)")
    t.add_argument("--no-face-landmarker", action="store_true",
                   help="write no face landmarker .task (landmarks then need mediapipe==0.10.21's built-in face mesh)")
    t.add_argument("--force", action="store_true", help="write even where the folder already holds model files")
    t.add_argument("--hallo3", action="store_true",
                   help="write a Hallo3 folder (the layout of fudan-generative-ai/hallo3) instead of a Hallo one")

    d = sub.add_parser("download", help="fetch the official files from Hugging Face into a model folder")
    d.add_argument("dir", type=Path, help="model folder, e.g. ComfyUI/models/hallo")
    which = d.add_mutually_exclusive_group()
    which.add_argument("--hallo2", action="store_true", help="also fetch hallo2/net.pth (long videos)")
    which.add_argument("--hallo3", action="store_true",
                       help="fetch Hallo3 (fudan-generative-ai/hallo3: the files inference reads, about 40 GB) "
                       "instead of Hallo")
    d.add_argument("--no-vocal-separator", action="store_true", help="skip audio_separator/Kim_Vocal_2.onnx")

    m = sub.add_parser("model-list", help="the official files in ComfyUI-Manager's model-list.json format")
    m.add_argument("output", type=Path, nargs="?", default=None,
                   help="the file to write (the pack keeps web/model-list.json); default: standard output")

    c = sub.add_parser("convert-hallo3",
                       help="check the Hallo3 checkpoint (a 29 GB pickle) and rewrite it as .safetensors, "
                       "which loads memory-mapped and without pickle")
    c.add_argument("pickle", type=Path, help="hallo3/1/mp_rank_00_model_states.pt of fudan-generative-ai/hallo3")
    c.add_argument("output", type=Path, nargs="?", default=None,
                   help="the .safetensors to write (default: beside the pickle, same name), where the loader "
                   "looks first; written under a temporary name and renamed when complete")
    c.add_argument("--keys", type=Path, default=None,
                   help="key table (.tsv or .json) for a model of other sizes, e.g. a tiny test model's "
                   "hallo3_keys.json (default: the release's 2,238 tensors)")
    c.add_argument("--force", action="store_true", help="replace the output if it exists")
    return parser


class _ProgressBar:
    """One line, rewritten in place: clip, step, elapsed and remaining time."""

    def __init__(self, stream=None):
        self.stream, self.start = stream or sys.stderr, time.monotonic()

    def __call__(self, p) -> None:
        elapsed = time.monotonic() - self.start
        eta = elapsed / p.done * (p.total - p.done)
        self.stream.write(
            f"\r{p.unit} {p.clip + 1}/{p.clips}  step {p.step}/{p.steps}  "
            f"[{p.done}/{p.total}] {elapsed:6.1f}s elapsed, {eta:6.1f}s left "
        )
        self.stream.flush()
        if p.done == p.total:
            self.stream.write("\n")


def _animate(args: argparse.Namespace) -> int:
    """Check everything that can be checked cheaply, say what is used, then load and run."""
    from .config import RegionWeights
    from .devices import resolve_device, resolve_dtype
    from .families import family_of, locate

    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)  # a wrong choice fails now; "auto" is the family's to resolve (its weights')
    # Which weights the folder holds, then the user's own files, the folder's other parts and what the weights limit.
    files = locate(args.models, args.variant)
    family = family_of(files.variant)
    framing = {"framing": args.framing, "crop_scale": args.crop_scale}
    pasted = {"feather": args.feather, "color_match": args.color_match, "max_side": args.max_side}
    prompt = {}
    if family.text_prompt:
        prompt = {"prompt": DEFAULT_PROMPT if args.prompt is None else args.prompt}
    elif args.prompt is not None:
        log.info("note: %s weights take no text prompt; --prompt is ignored", family.name)
    target = family.check_inputs(
        files, args.image, args.audio, args.output, image_size=args.size, face_expand_ratio=args.face_expand_ratio,
        separate_vocals=args.separate_vocals, **framing, paste_options=pasted, **prompt,
    )
    segment = {}
    if args.segments is not None or args.segment_index is not None:
        if family.name != "Hallo":
            raise InputError(f"--segments renders independent segments with Hallo and Hallo2 weights only; "
                             f"{family.name} renders the whole video", "segments")
        if args.segments is None or args.segment_index is None:
            raise InputError("--segments N and --segment-index I go together: give both to render one segment, or "
                             "neither for the whole video", "segments")
        if not 0 <= args.segment_index < args.segments:
            raise InputError(f"--segment-index {args.segment_index} is not a segment of {args.segments}: use 0 to "
                             f"{args.segments - 1}", "segment_index")
        segment = {"segments": args.segments, "segment_index": args.segment_index}
    chosen = {"steps": args.steps, "guidance_scale": args.cfg}  # None: the family's default
    settings = family.settings(
        files, **{k: v for k, v in chosen.items() if v is not None}, seed=args.seed, clip_length=args.clip_length,
        weights=RegionWeights(pose=args.pose_weight, face=args.face_weight, lip=args.lip_weight),
    )
    if target.replaces_existing:
        log.info("note: %s exists; it will be replaced once the new video is complete", target.path)
    pipeline = family.load(
        files, device=device, dtype=args.dtype, low_vram=args.low_vram, attention=args.attention, compile=args.compile,
        fp8=args.fp8 or None, offload_blocks=args.offload_blocks, tiled_decode=args.tiled_decode or None,
    )
    log.info("analysing the portrait and encoding the audio")
    out = pipeline.animate(
        args.image, args.audio, target.path, settings, image_size=args.size,
        face_expand_ratio=args.face_expand_ratio, separate_vocals=args.separate_vocals, progress=_ProgressBar(),
        **framing, **pasted, **prompt, **segment,
    )
    print(f"wrote {out}")
    return 0


def _join(args: argparse.Namespace) -> int:
    from .shards import join_files

    log.info("joining %d segment files", len(args.parts))
    print(f"wrote {join_files(args.parts, args.audio, args.output, image=args.image)}")
    return 0


def _make_tiny_models(args: argparse.Namespace) -> int:
    from .hallo.tiny_models import make_tiny_models
    from .hallo3.tiny_models import make_tiny_models_hallo3

    make = make_tiny_models_hallo3 if args.hallo3 else make_tiny_models
    root = make(args.dir, seed=args.seed, force=args.force, face_landmarker=not args.no_face_landmarker,
                mediapipe_wheel=args.mediapipe_wheel)
    print(f"wrote tiny model folder {root}")
    return 0


def _download(args: argparse.Namespace) -> int:
    if args.hallo3:
        from .hallo3.download import download as download_hallo3

        root = download_hallo3(args.dir, vocal_separator=not args.no_vocal_separator, progress=_ByteProgress())
    else:
        from .hallo.download import download

        root = download(args.dir, hallo=True, hallo2=args.hallo2, vocal_separator=not args.no_vocal_separator,
                        progress=_ByteProgress())
    print(f"model folder ready: {root}")
    return 0


def _model_list(args: argparse.Namespace) -> int:
    from .model_list import render

    if args.output is None:
        sys.stdout.write(render())
    else:
        args.output.write_text(render(), encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def _convert_hallo3(args: argparse.Namespace) -> int:
    from .hallo3.checkpoint import convert_checkpoint
    from .hallo3.key_table import KeyTable

    output = args.output or args.pickle.with_suffix(".safetensors")
    table = KeyTable.from_file(args.keys) if args.keys else KeyTable.release()
    log.info("converting %s (%d tensors) to %s", args.pickle, len(table), output)
    out = convert_checkpoint(args.pickle, output, table, force=args.force, progress=_ByteProgress())
    print(f"wrote {out}")
    return 0


class _ByteProgress:
    """One line, rewritten in place, at most every half gigabyte: GB copied of the total."""

    def __init__(self, stream=None, step: int = 500_000_000):
        self.stream, self.step, self.shown = stream or sys.stderr, step, 0

    def __call__(self, done: int, total: int) -> None:
        if done - self.shown < self.step and done < total:
            return
        self.shown = done
        self.stream.write(f"\r{done / 1e9:6.2f} / {total / 1e9:.2f} GB")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _setup_output(verbose: bool) -> None:
    """Our progress messages on stderr; the libraries' warnings only when asked for (-v or -W)."""
    for old in [h for h in log.handlers if getattr(h, "hallo_cli", False)]:
        log.removeHandler(old)  # main() may run more than once in one process (tests, scripts)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.hallo_cli = True
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    if not verbose and not sys.warnoptions:
        warnings.simplefilter("ignore")
        warnings.simplefilter("default", HalloWarning)  # ours are meant for the user (e.g. silent audio)
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        # Ours are written for the user: the message alone, not the library's source line that raised it.
        if issubclass(category, HalloWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show  # main()'s catch_warnings() puts the original back


@contextlib.contextmanager
def _native_stderr_hidden(hide: bool):
    """mediapipe, TFLite and glog write their info lines straight to file descriptor 2, past
    Python's warning filters. While hidden, fd 2 goes to /dev/null and Python's own stderr
    (progress, messages, tracebacks) to a copy of the terminal's; -v shows everything."""
    if not hide or sys.stderr is not sys.__stderr__ or not hasattr(os, "dup2"):
        yield  # someone else owns stderr (a test's capture, an embedding program): leave it alone
        return
    original = sys.stderr
    original.flush()
    terminal, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding=original.encoding, errors="backslashreplace")
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.close()
        os.dup2(terminal, 2)
        os.close(terminal)
        os.close(devnull)
        sys.stderr = original


COMMANDS = {
    "animate": _animate, "join": _join, "make-tiny-models": _make_tiny_models, "download": _download,
    "convert-hallo3": _convert_hallo3, "model-list": _model_list,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # SIGTERM (kill, a scheduler, a container stop) unwinds like Ctrl-C, so partial files go.
        with terminate_as_interrupt(), warnings.catch_warnings(), _native_stderr_hidden(not args.verbose):
            _setup_output(args.verbose)
            return COMMANDS[args.command](args)
    except HalloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("\nterminated; no output was left behind", file=sys.stderr)
        return 143  # 128 + SIGTERM, what a shell reports for a process the signal killed
    except KeyboardInterrupt:
        print("\ncancelled; no output was left behind", file=sys.stderr)
        return 130
