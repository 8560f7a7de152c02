"""Peak GPU memory of one full-size Hallo3 segment, estimated on a machine without a GPU (issue #13).

    python -m benchmarks.hallo3_memory_estimate --out benchmarks/results/hallo3-full-estimate-bf16

Every phase of a segment runs the real modules at the released sizes on the `meta` device (shapes, no data),
under `benchmarks.memory_estimate`'s allocation tracker and flash-attention footprint: T5-v1.1-XXL's encoder
(transformers), the VAE encode of 3 frames and the chunked decode of 13 latents (diffusers'
`AutoencoderKLCogVideoX` through `hallo3/vae.py`), the reference pass and the main DiT step with CFG batch 2
(`hallo3/dit.py`). Each phase gives the bytes its activations and inputs add at their peak; a mode adds the
weights it keeps on the GPU during that phase and the tensors it carries across phases (the reference K/V):

- release: what the release keeps resident all the time (SPEC-HALLO3 §12: main + reference DiT + T5 + VAE);
- default: T5 runs alone and leaves; the reference DiT runs alone once per video and leaves, its bank turned
  into per-layer K/V by the main DiT; the main DiT then stays, with the VAE beside it for the encodes, and goes
  to the host while the VAE decodes (the decode alone needs ~16 GB at the release's chunking; the table also
  shows the decode with the DiT resident);
- fp8: default with the main DiT's matrix weights (Linear/Conv) in fp8 e4m3, one module at a time upcast to
  the working dtype (the largest module a phase runs is added in that phase);
- fp8+offload N: fp8 with N DiT layers' weights on the host, streamed in through two layer-sized buffers.

Sizes are GB = 10^9 bytes (the issue's and SPEC §12's unit). Not counted, as in the Hallo estimate: the CUDA
context and library workspaces, allocator rounding and fragmentation, wav2vec2 (shared with Hallo, measured
there), and the sampler's few latent-sized tensors beyond the step's own inputs (4.5 MB each in fp32).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from benchmarks.memory_estimate import META, DeviceMemoryModel, FlashAttentionFootprint, module_bytes

GB = 1e9
# T5-v1.1-XXL's encoder, the release's text model (SPEC §8; `t5-v1_1-xxl/config.json`).
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu")
MODES = ("release", "default", "fp8")
PHASES = ("t5_encode", "vae_encode", "reference_bank", "reference_kv", "projections", "dit_step", "vae_decode")
# The modules each phase runs, hence the weights it needs on the GPU in the default plan.
NEEDS = {
    "t5_encode": ("t5",),
    "vae_encode": ("vae", "main"),  # the per-segment encodes of the motion frames happen with the DiT loaded
    "reference_bank": ("reference",),
    "reference_kv": ("main",),
    "projections": ("main",),
    "dit_step": ("main",),
    # The main DiT goes to the host while the VAE decodes: the decode's own activations (~16 GB at the release's
    # chunking) beside the resident DiT would need ~35 GB; moving 18 GB each way costs ~1.5 s per segment of minutes.
    "vae_decode": ("vae",),
    "vae_decode_dit_resident": ("vae", "main"),  # shown for comparison; no mode runs it
}
SHOWN_ONLY = {"vae_decode_dit_resident"}
CARRIES_KV = {"vae_encode", "projections", "dit_step", "vae_decode", "vae_decode_dit_resident"}


@dataclass
class MetaModels:
    nets: nn.Module  # hallo3.model.Hallo3Networks: .main and .reference
    vae: object  # hallo3.vae.Hallo3VAE
    t5: nn.Module
    config: object  # Hallo3Config

    def weights(self) -> dict[str, int]:
        return {"main": module_bytes(self.nets.main), "reference": module_bytes(self.nets.reference),
                "t5": module_bytes(self.t5), "vae": module_bytes(self.vae.model)}


def build_meta_models(config=None, vae_config=None, t5_kwargs: dict | None = None,
                      dtype: torch.dtype = torch.bfloat16) -> MetaModels:
    """The Hallo3 DiTs, VAE and T5 encoder on `meta` (released sizes unless given)."""
    from transformers import T5Config, T5EncoderModel

    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.model import build_hallo3
    from hallo_pipeline.hallo3.vae import Hallo3VAE, VAEConfig, build_vae

    config = config or Hallo3Config()
    vae_config = vae_config or VAEConfig()
    nets = build_hallo3(config, META, dtype)
    vae = build_vae(vae_config, META).to(dtype).eval().requires_grad_(False)
    with torch.device(META):
        t5 = T5EncoderModel(T5Config(**(t5_kwargs or T5_XXL)))
    return MetaModels(nets, Hallo3VAE(vae, vae_config), t5.to(dtype).eval().requires_grad_(False), config)


def _measure(run: Callable[[], object]) -> tuple[int, int, object]:
    """(peak bytes, bytes still held by the result, result) of `run` on meta; weights are not counted."""
    memory = DeviceMemoryModel()
    with torch.no_grad(), FlashAttentionFootprint(), memory:
        out = run()
        kept = memory.live
    return memory.peak, kept, out


def measure_phases(models: MetaModels, cfg_batch: int = 2) -> dict[str, dict]:
    """Per phase: `peak` (activations + inputs, bytes) and `kept` (its result, carried to later phases)."""
    cfg = models.config
    dit, seg, ap = cfg.dit, cfg.segment, cfg.audio_proj
    main, reference = models.nets.main, models.nets.reference
    dtype = next(main.parameters()).dtype
    h, w = seg.image_size
    t, lh, lw, z = dit.latent_frames, dit.latent_height, dit.latent_width, dit.out_channels

    def randn(*shape, **kw):
        return torch.randn(*shape, device=META, dtype=kw.get("dtype", dtype))

    phases = {}

    def t5_encode():
        ids = torch.zeros(1, dit.text_length, dtype=torch.long, device=META)
        return models.t5(input_ids=ids).last_hidden_state

    def vae_encode():
        frames = randn(1, 3, 3, h, w)  # 3 frames (the motion frames; SPEC §6.2: they make 1 latent)
        return models.vae.encode(frames, randn(*models.vae.latent_shape(frames.shape)))

    def reference_bank():
        bank, _ = reference.reference_bank(randn(1, 1, z, lh, lw))
        return bank

    for name, run in (("t5_encode", t5_encode), ("vae_encode", vae_encode)):
        peak, kept, _ = _measure(run)
        phases[name] = {"peak": peak, "kept": kept}
    peak, kept, bank = _measure(reference_bank)
    phases["reference_bank"] = {"peak": peak, "kept": kept}
    peak, kept, kv = _measure(lambda: main.reference_kv(bank))
    # The bank is an input here: held until its K/V exist.
    phases["reference_kv"] = {"peak": peak + phases["reference_bank"]["kept"], "kept": kept}

    def projections():
        audio = randn(cfg_batch, dit.num_frames, ap.seq_len, ap.blocks, ap.channels)
        return main.project_face(randn(cfg_batch, cfg.face_proj.clip_embeddings_dim)), main.project_audio(audio)

    peak, kept, (face, audio) = _measure(projections)
    phases["projections"] = {"peak": peak, "kept": kept}

    def dit_step():
        latent, concat = randn(cfg_batch, t, z, lh, lw), randn(cfg_batch, t, z, lh, lw)
        text = randn(cfg_batch, dit.text_length, dit.text_hidden_size, dtype=torch.float32)
        timestep = torch.full((cfg_batch,), 999, device=META, dtype=torch.long)
        v = main(latent, concat, timestep, text, face, audio, kv)
        uncond, cond = v.chunk(2)
        return uncond + 4.5 * (cond - uncond)  # CFG: the step keeps one guided v

    peak, kept, _ = _measure(dit_step)
    # face/audio tokens: made by the projections phase, inputs here.
    phases["dit_step"] = {"peak": peak + phases["projections"]["kept"], "kept": kept}

    def vae_decode():
        return models.vae.decode(randn(1, z, t, lh, lw), output_device="cpu")  # frames leave chunk by chunk

    peak, kept, _ = _measure(vae_decode)
    phases["vae_decode"] = {"peak": peak, "kept": kept}
    phases["kv_bytes"] = phases["reference_kv"]["kept"]
    return phases


def _fp8_modules(module: nn.Module) -> list[nn.Module]:
    """The modules whose weight matrices go to fp8 (Linear and convolutions; norms, biases and the learned
    positions stay in the working dtype)."""
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def fp8_bytes(module: nn.Module) -> int:
    """`module`'s bytes with its matrix weights in 1-byte fp8."""
    matrices = sum(m.weight.numel() * (m.weight.element_size() - 1) for m in _fp8_modules(module))
    return module_bytes(module) - matrices


def largest_upcast(module: nn.Module) -> int:
    """Working-dtype bytes of the largest weight matrix in `module`: the one upcast copy alive at a time."""
    return max((m.weight.nbytes for m in _fp8_modules(module)), default=0)


def layer_modules(main: nn.Module, i: int) -> list[nn.Module]:
    """What one offloaded DiT layer is: the transformer layer and its AdaLN projection and q/k norms."""
    adaln = main.mixins.adaln_layer
    return [main.transformer.layers[i], adaln.adaLN_modulations[i], adaln.query_layernorm_list[i],
            adaln.key_layernorm_list[i]]


def mode_table(models: MetaModels, phases: dict, offload_layers: int = 0) -> dict[str, dict[str, dict]]:
    """mode -> phase -> {weights, carried, activations, total} in bytes (+ 'fp8+offload N' when asked)."""
    main = models.nets.main
    w = models.weights()
    trunk_upcast = max(largest_upcast(layer) for layer in main.transformer.layers)
    upcast = {  # the largest matrix each phase runs on the main DiT, upcast from fp8
        "reference_kv": trunk_upcast, "dit_step": max(trunk_upcast, largest_upcast(main.mixins)),
        "projections": max(largest_upcast(main.transformer.audio_proj), largest_upcast(main.transformer.face_proj)),
    }
    layer_fp8 = sum(fp8_bytes(m) for m in layer_modules(main, 0))
    modes = {"release": None, "default": w["main"], "fp8": fp8_bytes(main)}
    if offload_layers:
        modes[f"fp8+offload {offload_layers}"] = fp8_bytes(main) - offload_layers * layer_fp8 + 2 * layer_fp8
    table = {}
    for mode, main_bytes in modes.items():
        rows = {}
        for phase in NEEDS:
            if main_bytes is None:  # release: everything, all the time
                weights = sum(w.values())
            else:
                weights = sum(main_bytes if n == "main" else w[n] for n in NEEDS[phase])
                if mode != "default":
                    weights += upcast.get(phase, 0)
            carried = phases["kv_bytes"] if phase in CARRIES_KV else 0
            activations = phases[phase.removesuffix("_dit_resident")]["peak"]
            rows[phase] = {"weights": weights, "carried": carried, "activations": activations,
                           "total": weights + carried + activations}
        table[mode] = rows
    return table


def peak_of(rows: dict[str, dict], phases=PHASES) -> tuple[str, int]:
    """The largest total over `phases` (by default those a mode runs)."""
    phase = max(phases, key=lambda p: rows[p]["total"])
    return phase, rows[phase]["total"]


DIT_PHASES = tuple(p for p in PHASES if "main" in NEEDS[p])


def layers_to_offload(models: MetaModels, phases: dict, budget: float) -> int | None:
    """The fewest DiT layers on the host that bring the fp8 phases holding the main DiT to `budget` bytes (None:
    no N does). Offloading layers cannot lower the other phases (T5, reference pass, decode)."""
    for n in range(0, models.config.dit.num_layers + 1):
        table = mode_table(models, phases, n)
        key = f"fp8+offload {n}" if n else "fp8"
        if peak_of(table[key], DIT_PHASES)[1] <= budget:
            return n
    return None


def estimate(models: MetaModels, budget_gb: float = 16.0) -> dict:
    phases = measure_phases(models)
    n = layers_to_offload(models, phases, budget_gb * GB)
    table = mode_table(models, phases, n or 0)
    return {
        "weights": models.weights(),
        "weights_fp8_main": fp8_bytes(models.nets.main),
        "kv_bytes": phases["kv_bytes"],
        "phases": {p: phases[p] for p in PHASES},
        "offload_layers_for_budget": n,
        "budget_gb": budget_gb,
        "modes": table,
        "peaks": {mode: dict(zip(("phase", "bytes"), peak_of(rows))) for mode, rows in table.items()},
        "dit_phase_peaks": {mode: dict(zip(("phase", "bytes"), peak_of(rows, DIT_PHASES)))
                            for mode, rows in table.items()},
    }


GOALS = {"default": 24.0, "fp8": 16.0}  # issue #13: default <= 24 GB, fp8 (+ offload) <= 16 GB


def markdown(result: dict, command: str, describe: str) -> str:
    gb = lambda b: f"{b / GB:.2f}"  # noqa: E731
    w = result["weights"]
    lines = [
        "# Estimated peak GPU memory of one Hallo3 segment (full size, no GPU needed)", "",
        f"`{command}`", "", describe, "",
        "Allocator peak (what `torch.cuda.max_memory_allocated` would report) in GB = 10^9 bytes, from the real "
        "modules on the `meta` device (`benchmarks/hallo3_memory_estimate.py`); the CUDA context and library "
        "workspaces (~0.5-1 GB) come on top. Attention is counted as the flash kernel stores it.", "",
        "## Weights (bf16 unless said)", "",
        "| part | GB |", "|---|---|",
        f"| main DiT (trunk + face/audio cross-attention + projections) | {gb(w['main'])} |",
        f"| main DiT, matrices in fp8 e4m3 | {gb(result['weights_fp8_main'])} |",
        f"| reference DiT | {gb(w['reference'])} |",
        f"| T5-v1.1-XXL encoder | {gb(w['t5'])} |",
        f"| VAE | {gb(w['vae'])} |",
        f"| reference K/V, per video (all layers) | {gb(result['kv_bytes'])} |", "",
        "## Activations and inputs of each phase (weights excluded)", "",
        "| phase | activations GB | result kept GB |", "|---|---|---|",
    ]
    lines += [f"| {p} | {gb(v['peak'])} | {gb(v['kept'])} |" for p, v in result["phases"].items()]
    modes = list(result["modes"])
    lines += ["", "## Peak per phase and mode: total GB (weights + carried K/V + activations)", "",
              "| phase | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for phase in NEEDS:
        cells = []
        for mode in modes:
            r = result["modes"][mode][phase]
            cells.append(f"{gb(r['total'])} ({gb(r['weights'])} w + {gb(r['carried'] + r['activations'])} a)")
        label = f"({phase}: not run by any mode)" if phase in SHOWN_ONLY else phase
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Peak per mode", "",
              "| mode | peak GB | peak GiB | in phase | peak of the phases holding the main DiT, GB | "
              "goal (issue #13) |", "|---|---|---|---|---|---|"]
    for mode, peak in result["peaks"].items():
        goal = GOALS.get(mode.partition("+")[0])
        verdict = "-" if goal is None else f"<= {goal:.0f} GB: {'met' if peak['bytes'] <= goal * GB else 'NOT met'}"
        dit = result["dit_phase_peaks"][mode]
        lines.append(f"| {mode} | {gb(peak['bytes'])} | {peak['bytes'] / 2**30:.2f} | {peak['phase']} | "
                     f"{gb(dit['bytes'])} ({dit['phase']}) | {verdict} |")
    n = result["offload_layers_for_budget"]
    lines += ["", f"Fewest DiT layers to keep on the host for the phases holding the main DiT to peak <= "
              f"{result['budget_gb']:.0f} GB in fp8: {'no N is enough' if n is None else n} (0: fp8 alone does). "
              "Offloading layers cannot lower the phases without the main DiT (T5, reference bank, VAE decode)."]
    decode = result["modes"]["fp8"]["vae_decode"]
    lines += ["", f"The VAE decode alone: {gb(decode['total'])} GB = VAE {gb(decode['weights'])} + reference K/V "
              f"{gb(decode['carried'])} + activations {gb(decode['activations'])} (the release's chunks of 2 latents, "
              "whose GroupNorms span the chunk, so smaller chunks would change the frames)."]
    return "\n".join(lines) + "\n"


DESCRIBE = (
    "One segment at {h}x{w}, {frames} frames ({latents} latents), CFG batch 2, {dtype}. Modes: release = main + "
    "reference DiT + T5 + VAE resident throughout; default = T5 alone then gone, reference DiT alone once per "
    "video then gone (its K/V kept), main DiT resident from then on with the VAE beside it for the encodes, and "
    "moved to the host while the VAE decodes (the decode keeps the K/V); fp8 = default with the main DiT's "
    "Linear/Conv weights in fp8, plus the largest matrix a phase runs upcast; fp8+offload N = N DiT layers"
    " streamed from the host through two layer buffers. `a` = carried reference K/V + the phase's activations"
    " and inputs."
)


def main(argv=None) -> int:
    import shlex
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--budget-gb", type=float, default=16.0, help="the fp8+offload target")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    models = build_meta_models(dtype=dtype)
    result = estimate(models, args.budget_gb)
    for mode, peak in result["peaks"].items():
        print(f"{mode:16s} peak {peak['bytes'] / GB:6.2f} GB in {peak['phase']}")
    if args.out:
        seg, dit = models.config.segment, models.config.dit
        command = " ".join(["python -m benchmarks.hallo3_memory_estimate",
                            *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        describe = DESCRIBE.format(h=seg.image_size[0], w=seg.image_size[1], frames=dit.num_frames,
                                   latents=dit.latent_frames, dtype=args.dtype)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"command": command, **result}, indent=1))
        args.out.with_suffix(".md").write_text(markdown(result, command, describe))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
