"""How far fp8 weight storage (hallo/memory.py, `--fp8`) moves Hallo's outputs on the tiny parity networks, and the
weight bytes it saves at full size (issue #15).

    python -m benchmarks.hallo_fp8_drift --out benchmarks/results/hallo-fp8-drift-cpu   # set from HALLO_PARITY_DIR

Runs the parity cases `denoise_step` (one guided step of one clip: the CFG halves and their combination) and
`pipeline` (3 clips of 3 DDIM steps with motion frames, the final latents of the first and last clip and the decoded
video) several ways, on the CPU, each compared with the fixture's expected tensors (what the release computes in
fp32):

- `fp32`: the weights as stored (our baseline: its deviation is the parity tests' own);
- `fp16` / `bf16`: the networks' weights and compute in that dtype, what a GPU run differs from fp32 by (fp16 is
  Hallo's default on a GPU), for scale;
- `fp8 Linear only`: `store_fp8(net, (nn.Linear,))`, fp32 compute: what converting the convolutions adds;
- `fp8`: `store_fp8(net)` (Linear and Conv2d), fp32 compute: the rounding of the weights alone;
- `fp8 + fp16 compute` / `fp8 + bf16 compute`: the networks in that dtype, then `store_fp8`: what `--fp8` runs on a
  GPU (the set's weights are fp16 values, so the fp16 cast itself rounds nothing).

The tiny VAE stays in fp32 in every mode (it is not converted; only the UNets' drift is measured here). Columns: the
largest absolute difference, the rms difference and that rms relative to the expected tensor's rms. Tiny random
weights are not trained ones: the figures show the size and growth of the rounding through the networks and the
sampler, not the visual effect on a real video (that needs the released weights).

Weight bytes: the full-size HalloNet built on the `meta` device (shapes only; the same shapes as
`hallo_net_keys.tsv`, tests/hallo_pipeline/hallo/test_checkpoint.py), in fp16, before and after `store_fp8`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from torch import nn

from benchmarks.drift import compare, write

MODES = ("fp32", "fp16", "bf16", "fp8 Linear only", "fp8", "fp8 + fp16 compute", "fp8 + bf16 compute")
DENOISE_OUTPUTS = ("expected.noise_pred_uncond", "expected.noise_pred_cond", "expected.noise_pred")
PIPELINE_OUTPUTS = ("debug.clip0.final_latents", "debug.clip2.final_latents", "expected.video")
NAMES = {"expected.noise_pred_uncond": "v uncond", "expected.noise_pred_cond": "v cond",
         "expected.noise_pred": "v guided (cfg 3.5)", "debug.clip0.final_latents": "clip 0 final latents",
         "debug.clip2.final_latents": "clip 2 final latents", "expected.video": "video frames [0, 1]"}


def load_case(root: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return json.loads((root / f"{name}.json").read_text()), load_file(str(root / f"{name}.safetensors"))


def network(root: Path, mode: str):
    from hallo_pipeline.hallo.checkpoint import load_net
    from hallo_pipeline.hallo.config import NetConfig
    from hallo_pipeline.hallo.memory import store_fp8

    net = load_net(root / "models" / "net.pth", config=NetConfig.from_json_file(root / "tiny_config.json"))
    net = net.to(compute_dtype(mode))
    if mode.startswith("fp8"):
        store_fp8(net, (nn.Linear,) if "Linear only" in mode else (nn.Linear, nn.Conv2d))
    return net


def compute_dtype(mode: str) -> torch.dtype:
    return torch.float16 if "fp16" in mode else torch.bfloat16 if "bf16" in mode else torch.float32


def denoise_step(root: Path, net) -> dict[str, torch.Tensor]:
    from hallo_pipeline.testing.hallo_cases import run_denoise_step

    settings, tensors = load_case(root, "denoise_step")
    with torch.no_grad():
        out = run_denoise_step(net, tensors, settings)
    return {name: out[name].float() for name in DENOISE_OUTPUTS}


def pipeline(root: Path, net) -> dict[str, torch.Tensor]:
    from hallo_pipeline.hallo.vae import LatentCodec, load_vae
    from hallo_pipeline.testing.hallo_cases import run_pipeline

    settings, tensors = load_case(root, "pipeline")
    with torch.no_grad():
        out = run_pipeline(net, LatentCodec(load_vae(root / "models" / "vae")), tensors, settings)
    return {name: out[name].float() for name in PIPELINE_OUTPUTS}


def weight_bytes(net=None) -> dict[str, dict[str, int]]:
    """Bytes of the networks' parameters and buffers, fp16, as stored and with each fp8 target set; `net`: a HalloNet
    on the `meta` device (default: the full size)."""
    import copy

    from hallo_pipeline.hallo.config import NetConfig
    from hallo_pipeline.hallo.memory import store_fp8
    from hallo_pipeline.hallo.models import HalloNet

    if net is None:
        with torch.device("meta"):
            net = HalloNet(NetConfig())

    def sizes(net) -> dict[str, int]:
        parts = {"ReferenceNet": net.reference_unet, "denoising UNet (motion, audio modules)": net.denoising_unet}
        out = {name: sum(t.nbytes for t in [*m.parameters(), *m.buffers()]) for name, m in parts.items()}
        out["whole net.pth"] = sum(t.nbytes for t in [*net.parameters(), *net.buffers()])
        return out

    result = {}
    for label, kinds in (("fp16", None), ("fp8 Linear only", (nn.Linear,)), ("fp8", (nn.Linear, nn.Conv2d))):
        converted = copy.deepcopy(net).to(torch.float16)
        if kinds:
            store_fp8(converted, kinds)
        result[label] = sizes(converted)
    return result


def markdown(result: dict, command: str) -> str:
    lines = ["# fp8 weight storage: drift of Hallo's outputs on the tiny parity networks (CPU), and bytes saved", "",
             f"`{command}`", "", __doc__.split("\n\n", 2)[2].strip(), "", "## Weight bytes at full size (GB = 10^9)",
             "", "| part | " + " | ".join(result["bytes"]) + " |", "|---|" + "---|" * len(result["bytes"])]
    for part in next(iter(result["bytes"].values())):
        lines.append(f"| {part} | " + " | ".join(f"{b[part] / 1e9:.2f}" for b in result["bytes"].values()) + " |")
    lines.append("")
    for case, by_mode in result["cases"].items():
        lines += [f"## case `{case}` (vs the fixture's expected tensors)", "",
                  "| output | mode | max abs | rms | rms / rms(expected) |", "|---|---|---|---|---|"]
        for name in next(iter(by_mode.values())):
            for mode, rows in by_mode.items():
                r = rows[name]
                lines.append(f"| {NAMES[name]} | {mode} | {r['max_abs']:.3g} | {r['rms']:.3g} | "
                             f"{r['rms_relative']:.3g} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ.get("HALLO_PARITY_DIR", "../shared/parity"))
    parser.add_argument("--parity", type=Path, default=default,
                        help="the Hallo parity fixture folder (default: $HALLO_PARITY_DIR, else ../shared/parity)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; use {', '.join(MODES)}")
    result = {"bytes": weight_bytes(), "cases": {"denoise_step": {}, "pipeline": {}}}
    for mode in modes:
        net = network(args.parity, mode)
        assert net.denoising_unet.conv_in.weight.dtype == compute_dtype(mode)
        for case, run in (("denoise_step", denoise_step), ("pipeline", pipeline)):
            _, tensors = load_case(args.parity, case)
            rows = compare(tensors, run(args.parity, net))
            result["cases"][case][mode] = rows
            for name, r in rows.items():
                print(f"{case:12s} {mode:18s} {NAMES[name]:22s} max {r['max_abs']:.3g} rms {r['rms']:.3g} "
                      f"rel {r['rms_relative']:.3g}", flush=True)
    if args.out:
        write(args.out, "benchmarks.hallo_fp8_drift", argv, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
