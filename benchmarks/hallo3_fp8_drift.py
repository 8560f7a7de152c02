"""How far fp8 weight storage (hallo3/memory.py) moves Hallo3's outputs, on the tiny parity networks (issue #13).

    python -m benchmarks.hallo3_fp8_drift --out benchmarks/results/hallo3-fp8-drift-cpu   # set from HALLO3_PARITY_DIR

Runs the parity cases `dit_step` (one CFG evaluation of the main DiT at two steps: velocity and x0) and `segment`
(the reference pass, then 50 guided steps with the recorded draws: every step's x0 and the output latent, then its
frames through the set's tiny VAE) several ways, on the CPU:

- `fp32`: the weights as stored (the reference);
- `bf16 main DiT`: the main DiT's weights and compute in bfloat16 (its float32 RoPE tables kept), what a default GPU
  run differs from fp32 by, for scale (the set's weights are exact in bf16, so rounding them alone changes nothing);
- `fp8`: `store_fp8` on the main DiT, what `--fp8` runs;
- `fp8 + offload`: the same with every layer streamed from the host (must equal `fp8`: streaming moves, never rounds);
- `tiled decode` (segment only): fp32 networks, the VAE decoding in spatial tiles (`--tiled-decode`; on the tiny
  64 x 96 frames 2 x 2 tiles of 48 x 80 pixels, overlapping as at full size). The tiny VAE is random too: how much
  a trained decoder's frames change at the seams is not measured here.

fp8 and fp8 + offload compute in float32 around the upcast weights. Each is compared with `fp32`: the largest
absolute difference, the rms difference and that rms relative to the reference's rms. Tiny random weights are not
trained ones: the figures show the size and growth of the rounding through the network and the sampler, not the
visual effect on a real video (that needs the released weights).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from benchmarks.drift import compare, write

WEIGHTS = Path("models") / "hallo3" / "1" / "mp_rank_00_model_states.safetensors"
VAE = Path("models") / "cogvideox-5b-i2v-sat" / "vae" / "3d-vae.pt"
MODES = ("fp32", "bf16 main DiT", "fp8", "fp8 + offload", "tiled decode")
DIT_MODES = MODES[:-1]  # the tiled decode changes only the frames


def load_case(root: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return json.loads((root / f"{name}.json").read_text()), load_file(str(root / f"{name}.safetensors"))


def networks(root: Path, mode: str):
    from safetensors.torch import load_file

    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.memory import store_fp8, stream_from_host
    from hallo_pipeline.hallo3.model import load_hallo3

    config = Hallo3Config.from_json_file(root / "tiny_config.json")
    nets = load_hallo3(load_file(str(root / WEIGHTS)), config)
    if mode == "bf16 main DiT":
        for p in nets.main.parameters():
            p.data = p.data.to(torch.bfloat16)
    if mode.startswith("fp8"):
        store_fp8(nets.main)
    if mode == "fp8 + offload":
        stream_from_host(nets.main, config.dit.num_layers)
    return nets


def dit_step(root: Path, mode: str) -> dict[str, torch.Tensor]:
    settings, t = load_case(root, "dit_step")
    main = networks(root, mode).main
    layers = len(main.transformer.layers)
    audio = t["input.audio_emb"]
    out = {}
    with torch.no_grad():
        inputs = {
            "latent": t["input.x_noisy"].expand(2, -1, -1, -1, -1),
            "concat": t["input.concat"].expand(2, -1, -1, -1, -1),
            "text": torch.cat([t["input.text_uc"], t["input.text_c"]]),
            "face_tokens": main.project_face(t["input.face_emb"].expand(2, -1)),
            "audio_tokens": main.project_audio(torch.cat([torch.zeros_like(audio), audio])),
            "reference": main.reference_kv([t[f"input.bank.{i}"] for i in range(layers)]),
        }
        for ev in settings["evaluations"]:
            v = main(timestep=torch.full((2,), ev["timestep_fed"]), **inputs)
            x0 = ev["c_skip"] * t["input.x_noisy"] + ev["c_out"] * v
            guided = x0[:1] + ev["guidance"] * (x0[1:] - x0[:1])
            step = ev["step_index_i"]
            out[f"step {step}: velocity (both CFG halves)"] = v
            out[f"step {step}: guided x0"] = guided
    return out


def segment(root: Path, mode: str) -> dict[str, torch.Tensor]:
    from hallo_pipeline.hallo3.noise import ReplayedNoise
    from hallo_pipeline.hallo3.sampler import Schedule, guided_v_prediction, sample
    from hallo_pipeline.hallo3.vae import VAEConfig, load_vae
    from hallo_pipeline.testing.hallo3_cases import segment_case_velocities

    settings, t = load_case(root, "segment")
    nets = networks(root, mode)
    out = {}
    with torch.no_grad():
        velocities = segment_case_velocities(nets, t)
        denoised = {}
        draws = [t[f"input.noise.{d['index']:03d}"] for d in settings["noise_draws"]]
        latent = sample(
            guided_v_prediction(velocities, settings["guidance"]), t["expected.latent"].shape,
            Schedule.build(settings["num_steps"]), ReplayedNoise(draws, [d["fn"] for d in settings["noise_draws"]]),
            callback=lambda step, x, d: denoised.__setitem__(step.index, d.clone()),
        )
        for index in (0, 24, settings["num_steps"] - 2):
            out[f"x0 at step {index}"] = denoised[index]
        out["output latent (x0 of the last step)"] = latent
        sizes = json.loads((root / "tiny_config.json").read_text())
        vae = load_vae(root / VAE, VAEConfig.from_dict(sizes["vae"]))
        frames = vae.decode(latent.permute(0, 2, 1, 3, 4), tiled=mode == "tiled decode")
        out["frames (decoded, [-1, 1])"] = frames
    return out


def markdown(result: dict, command: str) -> str:
    lines = ["# fp8 weight storage: drift of Hallo3's outputs on the tiny parity networks (CPU, fp32 compute)", "",
             f"`{command}`", "", __doc__.split("\n\n", 2)[2].strip(), ""]
    for case, by_mode in result["cases"].items():
        lines += [f"## case `{case}`", "", "| output | mode | max abs | rms | rms / rms(reference) |",
                  "|---|---|---|---|---|"]
        names = next(iter(by_mode.values()))
        for name in names:
            for mode, rows in by_mode.items():
                r = rows[name]
                lines.append(f"| {name} | {mode} | {r['max_abs']:.3g} | {r['rms']:.3g} | {r['rms_relative']:.3g} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ.get("HALLO3_PARITY_DIR", "../shared/parity-hallo3"))
    parser.add_argument("--parity", type=Path, default=default,
                        help="the Hallo3 parity fixture folder (default: $HALLO3_PARITY_DIR, else "
                        "../shared/parity-hallo3)")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {"cases": {}}
    for case, run, modes in (("dit_step", dit_step, DIT_MODES), ("segment", segment, MODES)):
        outputs = {mode: run(args.parity, mode) for mode in modes}
        result["cases"][case] = {mode: compare(outputs["fp32"], outputs[mode]) for mode in modes[1:]}
        for mode, rows in result["cases"][case].items():
            for name, r in rows.items():
                print(f"{case:9s} {mode:14s} {name:40s} max {r['max_abs']:.3g} rms {r['rms']:.3g} "
                      f"rel {r['rms_relative']:.3g}")
    if args.out:
        write(args.out, "benchmarks.hallo3_fp8_drift", argv, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
