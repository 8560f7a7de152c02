"""Speed and memory of the Hallo pipeline, baseline (release order of work) vs our defaults.

    python benchmarks/run.py --config tiny --device cpu            # CI-sized, a minute on 2 cores
    python benchmarks/run.py --config full --device cuda --dtype bf16   # real sizes, random weights
    python benchmarks/run.py --config full --device cuda --dtype bf16 --attention flash   # another attention kernel

Random weights of the real architecture are enough for speed and memory. Writes
`benchmarks/results/<name>.json` and `.md`, each with the device, dtype, versions and the
exact command. FLOPs are counted with `torch.utils.flop_counter` on the `meta` device
(exact and free, also for the full size on a CPU-only machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing  # noqa: E402

from benchmarks.memory_estimate import FULL_VAE, build_meta_models, estimate_generation  # noqa: E402
from hallo_pipeline.attention_backends import select_kernel  # noqa: E402
from hallo_pipeline.config import ATTENTION_OPTIONS, RegionWeights  # noqa: E402
from hallo_pipeline.devices import Placement, resolve_device, resolve_dtype  # noqa: E402
from hallo_pipeline.errors import InputError  # noqa: E402
from hallo_pipeline.hallo.config import NetConfig  # noqa: E402
from hallo_pipeline.hallo.models import HalloNet, RegionMasks  # noqa: E402
from hallo_pipeline.hallo.sampling.clip_loop import ClipInputs, ClipSampler, SamplerSettings  # noqa: E402
from hallo_pipeline.hallo.sampling.guided_step import (  # noqa: E402
    encode_identity,
    guided_denoise_step,
    motion_frame_features,
    reference_image_features,
    reference_layers,
)
from hallo_pipeline.hallo.speedups import apply_speedups  # noqa: E402
from hallo_pipeline.hallo.tiny_models import random_init, tiny_net_config  # noqa: E402
from hallo_pipeline.hallo.vae import MAX_DECODE_BATCH, LatentCodec  # noqa: E402

TINY_VAE = dict(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8)

# bf16 dense matmul peaks measured on this project's lent machines (SPEC §12, device notes).
KNOWN_PEAK_TFLOPS = {"H100": 798.0, "H200": 790.0}
RELEASE_DENOISER_TFLOP_512_F16 = 54.0  # SPEC §12: one CFG denoiser forward of the release


@dataclass
class Setup:
    config: str
    size: int
    frames: int
    steps: int
    clips: int


SETUPS = {
    "tiny": Setup("tiny", size=128, frames=16, steps=4, clips=2),
    "full": Setup("full", size=512, frames=16, steps=40, clips=2),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 3, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": repeat}


def measured_matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = timed(lambda: a @ b, device, repeat=5, warmup=2)["min_s"]
    return 2 * n**3 / t / 1e12


def count_flops(config: NetConfig, size: int, frames: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    lat = size // 8
    with torch.device("meta"):
        net = HalloNet(config)
        masks = [RegionMasks(*(torch.rand((lat >> i) ** 2) for _ in range(3))) for i in range(4)]
        identity = encode_identity(net, torch.randn(1, 512), torch.rand(1, 3, size, size), masks)
        ap = config.audioproj
        audio = net.audioproj(torch.randn(1, frames, ap.window, ap.layers, ap.channels))
        with FlopCounterMode(display=False) as fc:
            reference = reference_layers(net, torch.randn(3, 4, lat, lat), identity.face_tokens, frames)
        ref_release = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            motion_frame_features(net, torch.randn(2, 4, lat, lat), identity.face_tokens)
        ref_cached = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            guided_denoise_step(net, torch.randn(1, 4, frames, lat, lat), 999, identity, audio, reference, 3.5,
                                RegionWeights())
        denoiser = fc.get_total_flops()
    return {"denoiser_forward": denoiser, "reference_release_order": ref_release,
            "reference_per_clip_cached": ref_cached}


VAE_SIZES = {"tiny": TINY_VAE, "full": FULL_VAE}


def audio_config(config_name: str):
    """The wav2vec2 `audio_features_seconds` runs: the tiny test encoder, or wav2vec2-base."""
    from transformers import Wav2Vec2Config

    from hallo_pipeline.testing.tiny_wav2vec2 import tiny_wav2vec2_config

    return tiny_wav2vec2_config(hidden_size=32, conv_dim=32) if config_name == "tiny" else Wav2Vec2Config(vocab_size=32)


def net_config(config_name: str) -> NetConfig:
    return tiny_net_config() if config_name == "tiny" else NetConfig()


def build(config_name: str, device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKL

    config = net_config(config_name)
    with torch.device(device):
        net = random_init(HalloNet(config), seed=0)
    net = net.to(dtype).eval().requires_grad_(False)
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, **VAE_SIZES[config_name])
    return config, net, vae.to(device, dtype).eval().requires_grad_(False)


def audio_features_seconds(config_name: str, device: torch.device, dtype: torch.dtype, seconds: float) -> dict:
    """wav2vec2 features of `seconds` of audio: the tiny test encoder, or wav2vec2-base's size with random weights."""
    import tempfile

    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.testing.tiny_wav2vec2 import write_tiny_wav2vec2

    with tempfile.TemporaryDirectory() as folder:
        if config_name == "tiny":
            write_tiny_wav2vec2(folder, hidden_size=32, conv_dim=32)
        else:  # transformers' default Wav2Vec2Config is wav2vec2-base's architecture
            from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

            Wav2Vec2ForCTC(audio_config(config_name)).save_pretrained(folder)
            Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(folder)
        encoder = AudioEncoder(folder, device=device, dtype=dtype)
        t = torch.linspace(0, seconds, int(16000 * seconds))
        wave = (0.3 * torch.sin(2 * torch.pi * 180 * t) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t))).numpy()
        result = timed(lambda: encoder.encode(wave, 16000, clip_length=16), device, repeat=2)
    result["audio_seconds"] = seconds
    return result


def clip_inputs(net: HalloNet, setup: Setup) -> ClipInputs:
    g = torch.Generator().manual_seed(0)
    lat = setup.size // 8
    masks = [RegionMasks(*(torch.rand((lat >> i) ** 2, generator=g) for _ in range(3))) for i in range(4)]
    face_region = torch.zeros(3, setup.size, setup.size)
    face_region[:, setup.size // 4 : 3 * setup.size // 4, setup.size // 4 : 3 * setup.size // 4] = 1
    identity = encode_identity(net, torch.randn(1, 512, generator=g), face_region[None], masks)
    ap = net.config.audioproj
    return ClipInputs(
        identity=identity,
        reference_image=torch.rand(3, setup.size, setup.size, generator=g) * 2 - 1,
        face_region=face_region,
        audio_features=torch.randn(setup.clips * setup.frames, ap.window, ap.layers, ap.channels, generator=g),
    )


MODES = {
    # the release's order of work: ReferenceNet on all six rows every clip, VAE decode one frame at a time
    "baseline": dict(cache_reference=False, decode_batch=1, low_vram=False),
    "default": dict(cache_reference=True, decode_batch=None, low_vram=False),
    "low_vram": dict(cache_reference=True, decode_batch=None, low_vram=True),
}


def run_mode(mode: str, net, vae, setup: Setup, device, dtype, meta_models: tuple) -> dict:
    opts = MODES[mode]
    offload = torch.device("cpu") if opts["low_vram"] and device.type == "cuda" else None
    placement = Placement(device, offload)
    placement.home(vae)
    placement.home(net.reference_unet)
    codec = LatentCodec(vae, decode_batch=opts["decode_batch"])
    settings = SamplerSettings(steps=setup.steps, clip_length=setup.frames, cache_reference=opts["cache_reference"])
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    inputs = clip_inputs(net, setup)
    sampler = ClipSampler(net, codec, settings, placement=placement)
    _sync(device)
    t0 = time.perf_counter()
    frames = sum(f.shape[0] for f, _ in sampler.run(inputs))
    _sync(device)
    seconds = time.perf_counter() - t0
    placement.offload = None
    placement.home(vae)
    placement.home(net.reference_unet)
    out = {
        "seconds": seconds,
        "frames": frames,
        "seconds_per_video_second": seconds / (frames / 25),
        "seconds_per_clip": seconds / setup.clips,
    }
    if device.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    # The same run modelled on `meta` (benchmarks/memory_estimate.py), to check the model against
    # the measurement above wherever a GPU runs this. Auto-sized decode batches reach the maximum
    # on any GPU with room for this benchmark.
    out["estimated_peak_gpu_gib"] = estimate_generation(
        *meta_models, mode, setup.size, opts["decode_batch"] or MAX_DECODE_BATCH, clips=2, steps=2,
        clip_length=setup.frames,
    ).peak_gib
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(SETUPS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--attention", default="auto", choices=ATTENTION_OPTIONS,
                        help="attention kernel of both UNets in every timing (auto = sdpa)")
    parser.add_argument("--steps", type=int, help="DDIM steps per clip (default: tiny 8, full 40)")
    parser.add_argument("--clips", type=int, help="clips in the end-to-end timing (default 2)")
    parser.add_argument("--modes", default="baseline,default,low_vram")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", help="result file name (default: <config>-<device>-<dtype>[-<attention>])")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    try:  # before minutes of building and timing
        kernel = select_kernel(args.attention, device, dtype)
    except InputError as exc:
        parser.error(str(exc))
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    setup = SETUPS[args.config]
    setup = Setup(setup.config, setup.size, setup.frames, args.steps or setup.steps, args.clips or setup.clips)
    dtype_name = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    other_kernel = [args.attention] if args.attention != "auto" else []
    name = args.name or "-".join([args.config, device.type, dtype_name, *other_kernel])

    config, net, vae = build(args.config, device, dtype)
    apply_speedups(net, attention=kernel)
    flops = count_flops(config, setup.size, setup.frames)
    inputs = clip_inputs(net, setup)
    lat = setup.size // 8
    g = torch.Generator().manual_seed(1)
    ref_lat = torch.randn(3, 4, lat, lat, generator=g).to(device, dtype)
    reference = reference_layers(net, ref_lat, inputs.identity.face_tokens, setup.frames)
    audio = net.audioproj(inputs.audio_features[: setup.frames][None].to(device, dtype))
    latents = torch.randn(1, 4, setup.frames, lat, lat, generator=g).to(device)

    def denoise():
        guided_denoise_step(net, latents, 999, inputs.identity, audio, reference, 3.5, RegionWeights())

    timings = {
        "denoiser_forward": timed(denoise, device),
        "reference_release_order": timed(
            lambda: reference_layers(net, ref_lat, inputs.identity.face_tokens, setup.frames), device),
        "reference_image_once": timed(
            lambda: reference_image_features(net, ref_lat[:1], inputs.identity.face_tokens), device),
        "reference_motion_per_clip": timed(
            lambda: motion_frame_features(net, ref_lat[1:], inputs.identity.face_tokens), device),
        "vae_decode_per_frame": timed(
            lambda: LatentCodec(vae, decode_batch=1).decode(latents[0].transpose(0, 1)), device, 2),
        "vae_decode_batched_auto": timed(lambda: LatentCodec(vae).decode(latents[0].transpose(0, 1)), device, 2),
        "audio_features": audio_features_seconds(args.config, device, dtype, setup.clips * setup.frames / 25),
    }
    meta_models = build_meta_models(config, dtype, VAE_SIZES[setup.config], audio_config(setup.config))
    modes = {m: run_mode(m, net, vae, setup, device, dtype, meta_models) for m in args.modes.split(",")}

    peak = measured_matmul_tflops(device, dtype)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    nominal = next((v for k, v in KNOWN_PEAK_TFLOPS.items() if k in gpu_name), None)
    achieved = flops["denoiser_forward"] / timings["denoiser_forward"]["median_s"] / 1e12
    result = {
        "name": name,
        "command": " ".join(["python benchmarks/run.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "setup": asdict(setup),
        "device": gpu_name,
        "device_type": device.type,
        "dtype": dtype_name,
        "attention": args.attention,
        "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "diffusers": __import__("diffusers").__version__},
        "flops": flops,
        "timings": timings,
        "modes": modes,
        "speedup_default_vs_baseline": (modes["baseline"]["seconds"] / modes["default"]["seconds"])
        if {"baseline", "default"} <= modes.keys() else None,
        "matmul_peak_measured_tflops": peak,
        "denoiser_tflops_achieved": achieved,
        "denoiser_utilisation_of_measured_matmul_peak": achieved / peak,
        "denoiser_utilisation_of_nominal_peak": achieved / nominal if nominal else None,
        "host_peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    t = r["timings"]
    lines = [
        f"# {r['name']}",
        "",
        f"`{r['command']}`",
        "",
        f"device **{r['device']}** ({r['device_type']}), {r['dtype']}, attention {r['attention']}, "
        f"{r['threads']} threads; "
        f"torch {r['versions']['torch']}, diffusers {r['versions']['diffusers']}; "
        f"{r['setup']['size']}x{r['setup']['size']}, {r['setup']['frames']} frames per clip, "
        f"{r['setup']['steps']} steps, {r['setup']['clips']} clips",
        "",
        "| stage | median s |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v['median_s']:.4f} |" for k, v in t.items()]
    lines += ["", "| mode | s total | s per clip | s per s of video | peak GPU GiB | estimated GiB |",
              "|---|---|---|---|---|---|"]
    for m, v in r["modes"].items():
        gpu = f"{v['peak_gpu_gib']:.2f}" if "peak_gpu_gib" in v else "-"
        lines.append(f"| {m} | {v['seconds']:.2f} | {v['seconds_per_clip']:.2f} | {v['seconds_per_video_second']:.2f} "
                     f"| {gpu} | {v['estimated_peak_gpu_gib']:.2f} |")
    f = r["flops"]
    lines += [
        "",
        f"- denoiser forward: {f['denoiser_forward'] / 1e12:.3f} TFLOP counted, "
        f"{r['denoiser_tflops_achieved']:.3f} TFLOP/s achieved; measured matmul peak "
        f"{r['matmul_peak_measured_tflops']:.3f} TFLOP/s -> "
        f"{100 * r['denoiser_utilisation_of_measured_matmul_peak']:.1f} %"
        + (f"; {100 * r['denoiser_utilisation_of_nominal_peak']:.1f} % of the nominal bf16 peak"
           if r["denoiser_utilisation_of_nominal_peak"] else ""),
        f"- ReferenceNet: {f['reference_release_order'] / 1e12:.3f} TFLOP per clip in release order, "
        f"{f['reference_per_clip_cached'] / 1e12:.3f} TFLOP per clip with the portrait's rows cached",
    ]
    if r["speedup_default_vs_baseline"]:
        lines.append(f"- default vs baseline end to end: {r['speedup_default_vs_baseline']:.2f}x")
    lines.append(f"- host peak RSS {r['host_peak_rss_gib']:.2f} GiB")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
