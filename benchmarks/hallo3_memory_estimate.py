"""Peak GPU memory of a full-size Hallo3 video, estimated on a machine without a GPU (issue #13).

    python -m benchmarks.hallo3_memory_estimate --out benchmarks/results/hallo3-full-estimate-bf16

The real code runs at the released sizes on the `meta` device (shapes, no data) under `benchmarks.memory_estimate`'s
allocation tracker and flash-attention footprint: `Hallo3Generator.encode_prompt` (T5-v1.1-XXL's encoder from
transformers) and `Hallo3Generator.generate` over two segments (the VAE encodes, the reference pass, the main DiT's
K/V and sampling, the chunked decode of 13 latents by diffusers' `AutoencoderKLCogVideoX`), with each mode's
`MemoryOptions` applied by the library's own code (`memory.store_fp8`, `memory.stream_from_host`, the tiled
decode). The generator's placement is a metered one: a network's weights count as resident inside its
`placement.use(...)` block (all the time in the `all resident` mode), and each block's peak is kept. What the loop
carries between phases (the reference K/V, the face tokens, the motion frames) is counted where it is alive.

Modes (the CLI's options in brackets):
- all resident: every network on the GPU throughout, as the release keeps them (SPEC-HALLO3 §12), our loop;
- default: T5, the reference DiT, the main DiT and the VAE each on the GPU only for its own phase;
- fp8 [--fp8]: default with the main DiT's layer matrices stored in float8 e4m3, upcast one matrix at a time;
- fp8 + offload N [--fp8 --offload-blocks N]: and N of its layers streamed from the host, one at a time;
- tiled decode [--tiled-decode]: default with diffusers' spatial tiling of the decoder;
- low-VRAM [--low-vram]: fp8, half the layers streamed, tiled decode.

Sizes are GB = 10^9 bytes (the issue's and SPEC §12's unit). Not counted, as in the Hallo estimate: the CUDA context
and library workspaces, allocator rounding and fragmentation, and wav2vec2 (run before generation, shared with
Hallo). The sampler runs 2 steps per segment: every step holds the same tensors, so the peak is that of 50.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from benchmarks.memory_estimate import META, DeviceMemoryModel, FlashAttentionFootprint, module_bytes
from hallo_pipeline.devices import Placement

GB = 1e9
# T5-v1.1-XXL's encoder, the release's text model (SPEC §8; `t5-v1_1-xxl/config.json`).
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu")
PHASES = ("t5_encode", "vae_encode", "reference_bank", "main_dit", "vae_decode")
PHASE_HELP = {
    "t5_encode": "T5 encodes the prompt (once; cached per prompt)",
    "vae_encode": "VAE encodes a segment's 3 motion frames (and, once, the reference image)",
    "reference_bank": "reference DiT: the bank (once per video)",
    "main_dit": "main DiT: the bank's K/V (once), then a segment's sampling, CFG batch 2",
    "vae_decode": "VAE decodes a segment's 13 latents to 49 frames",
}
NETWORK_OF = {"t5_encode": "t5", "vae_encode": "vae", "reference_bank": "reference", "main_dit": "main",
              "vae_decode": "vae"}


@dataclass(frozen=True)
class Mode:
    name: str
    fp8: bool = False
    offload_blocks: int = 0
    tiled_decode: bool = False
    all_resident: bool = False

    def memory(self):
        from hallo_pipeline.hallo3.pipeline import MemoryOptions

        return MemoryOptions(fp8=self.fp8, offload_blocks=self.offload_blocks, tiled_decode=self.tiled_decode)


def modes(num_layers: int, offload_blocks: int | None = None) -> list[Mode]:
    from hallo_pipeline.hallo3.family import low_vram_memory

    low = low_vram_memory(num_layers)
    n = num_layers if offload_blocks is None else offload_blocks
    return [
        Mode("all resident", all_resident=True),
        Mode("default"),
        Mode("fp8", fp8=True),
        Mode(f"fp8 + offload {n}", fp8=True, offload_blocks=n),
        Mode("tiled decode", tiled_decode=True),
        Mode("low-VRAM", fp8=low.fp8, offload_blocks=low.offload_blocks, tiled_decode=low.tiled_decode),
    ]


class MeteredPhases(Placement):
    """A placement on `meta` that moves nothing, counts a network's weights as resident inside its `use` block
    (or from `home` on, with `all_resident`), and keeps the peak of each phase."""

    def __init__(self, memory: DeviceMemoryModel, names: dict[int, str], all_resident: bool = False):
        super().__init__(META, offload=META)
        self.memory, self.names, self.all_resident = memory, names, all_resident
        self.peaks: dict[str, int] = {}
        self.weights: dict[str, int] = {}
        self._last = None

    def home(self, module: nn.Module) -> nn.Module:
        if self.all_resident:
            self.memory.add_resident(module_bytes(module))
        return module

    def _phase(self, network: str) -> str:
        if network == "vae":
            return "vae_decode" if self._last == "main" else "vae_encode"
        return {"t5": "t5_encode", "reference": "reference_bank", "main": "main_dit"}[network]

    @contextlib.contextmanager
    def use(self, *modules: nn.Module, memory: int = 0) -> Iterator[None]:
        (network,) = {self.names[id(m)] for m in modules}
        phase = self._phase(network)
        nbytes = 0 if self.all_resident else module_bytes(*modules)
        before = self.memory.peak
        self.memory.peak = self.memory.current
        self.memory.add_resident(nbytes)
        try:
            yield
        finally:
            self.peaks[phase] = max(self.peaks.get(phase, 0), self.memory.peak)
            self.weights[phase] = self.memory.resident
            self.memory.resident -= nbytes
            self.memory.peak = max(before, self.memory.peak)
            self._last = network


class MetaT5:
    """`T5TextEncoder`'s interface over transformers' encoder built on meta (no tokenizer needed for shapes)."""

    def __init__(self, model: nn.Module, length: int):
        self.model, self.length = model, length

    def encode(self, prompt: str) -> torch.Tensor:
        ids = torch.zeros(1, self.length, dtype=torch.long, device=META)
        return self.model(input_ids=ids).last_hidden_state.to(torch.float32)


def build_t5(t5_kwargs: dict | None, dtype: torch.dtype) -> nn.Module:
    from transformers import T5Config, T5EncoderModel

    with torch.device(META):
        t5 = T5EncoderModel(T5Config(**(t5_kwargs or T5_XXL)))
    return t5.to(dtype).eval().requires_grad_(False)


def run_mode(mode: Mode, config=None, vae_config=None, t5_kwargs: dict | None = None,
             dtype: torch.dtype = torch.bfloat16, segments: int = 2) -> dict:
    """One mode through the real generator on meta -> weights, per-phase peaks and the reference K/V's size."""
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.model import build_hallo3
    from hallo_pipeline.hallo3.pipeline import Hallo3Generator
    from hallo_pipeline.hallo3.segments import LoopSettings, VideoConditions
    from hallo_pipeline.hallo3.vae import Hallo3VAE, VAEConfig, build_vae

    config = config or Hallo3Config()
    vae_config = vae_config or VAEConfig()
    nets = build_hallo3(config, META, dtype)
    memory_options = mode.memory()
    memory_options.apply(nets.main)
    vae = Hallo3VAE(build_vae(vae_config, META).to(dtype).eval().requires_grad_(False), vae_config)
    t5 = MetaT5(build_t5(t5_kwargs, dtype), config.dit.text_length)
    names = {id(nets.main): "main", id(nets.reference): "reference", id(vae.model): "vae", id(t5.model): "t5"}
    weights = {n: module_bytes(m) for n, m in (("main", nets.main), ("reference", nets.reference),
                                                ("t5", t5.model), ("vae", vae.model))}

    dit, seg, ap = config.dit, config.segment, config.audio_proj
    settings = LoopSettings.from_config(config, steps=2)
    frames = settings.stride * (segments - 1) + 1  # the last segment keeps one frame: `segments` segments
    rows = -(-frames // settings.segment_frames) * settings.segment_frames
    h, w = seg.image_size
    tracker = DeviceMemoryModel()
    with torch.no_grad(), FlashAttentionFootprint(), tracker:
        placement = MeteredPhases(tracker, names, mode.all_resident)
        for module in (t5.model, nets.reference, nets.main, vae.model):
            placement.home(module)
        generator = Hallo3Generator(nets, vae, t5, None, config, placement=placement, memory=memory_options)
        text = generator.encode_prompt("a prompt")
        conditions = VideoConditions(
            image=torch.zeros(1, 3, h, w), reference=torch.zeros(1, 3, h, w),
            face_embedding=torch.zeros(1, config.face_proj.clip_embeddings_dim), text=text,
            audio=torch.zeros(rows, ap.seq_len, ap.blocks, ap.channels), frames=frames,
        )
        made = sum(1 for _ in generator.generate(conditions, steps=settings.steps))
    assert made == segments
    bank = [torch.empty(1, dit.tokens_per_frame, dit.hidden_size, device=META, dtype=dtype)] * dit.num_layers
    kv_bytes = sum(t.nbytes for pair in nets.main.reference_kv(bank) for t in pair)
    return {
        "mode": mode.__dict__, "weights": weights, "kv_bytes": kv_bytes,
        "phases": {p: {"total": placement.peaks[p], "weights": placement.weights[p],
                       "activations": placement.peaks[p] - placement.weights[p]} for p in PHASES},
        "peak": tracker.peak, "peak_phase": max(PHASES, key=lambda p: placement.peaks[p]),
    }


def estimate(config=None, vae_config=None, t5_kwargs: dict | None = None, dtype: torch.dtype = torch.bfloat16,
             offload_blocks: int | None = None, segments: int = 2) -> dict:
    from hallo_pipeline.hallo3.config import Hallo3Config

    layers = (config or Hallo3Config()).dit.num_layers
    return {"modes": {m.name: run_mode(m, config, vae_config, t5_kwargs, dtype, segments)
                      for m in modes(layers, offload_blocks)}}


GOALS = {"default": 24.0, "low-VRAM": 16.0}  # issue #13: default <= 24 GB, fp8 + offload <= 16 GB


def markdown(result: dict, command: str, describe: str) -> str:
    gb = lambda b: f"{b / GB:.2f}"  # noqa: E731
    runs = result["modes"]
    names = list(runs)
    lines = [
        "# Estimated peak GPU memory of a Hallo3 video (full size, no GPU needed)", "",
        f"`{command}`", "", describe, "",
        "Allocator peak (what `torch.cuda.max_memory_allocated` would report) in GB = 10^9 bytes, from the library's "
        "own generator on the `meta` device (`benchmarks/hallo3_memory_estimate.py`); the CUDA context and library "
        "workspaces (~0.5-1 GB) come on top. Attention is counted as the flash kernel stores it.", "",
        "## Weights on the GPU while each network computes", "",
        "| part | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
    ]
    for part, label in (("main", "main DiT (resident part)"), ("reference", "reference DiT"),
                        ("t5", "T5-v1.1-XXL encoder"), ("vae", "VAE")):
        lines.append(f"| {label} | " + " | ".join(gb(runs[m]["weights"][part]) for m in names) + " |")
    lines += ["| reference K/V, per video (all layers) | " + " | ".join(gb(runs[m]["kv_bytes"]) for m in names)
              + " |", "",
              "## Peak per phase and mode: total GB (weights in use + everything else alive)", "",
              "| phase | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for phase in PHASES:
        cells = [f"{gb(runs[m]['phases'][phase]['total'])} ({gb(runs[m]['phases'][phase]['weights'])} w + "
                 f"{gb(runs[m]['phases'][phase]['activations'])} a)" for m in names]
        lines.append(f"| {phase}: {PHASE_HELP[phase]} | " + " | ".join(cells) + " |")
    lines += ["", "## Peak per mode", "",
              "| mode | peak GB | peak GiB | in phase | peak of the main DiT's phase, GB | goal (issue #13) |",
              "|---|---|---|---|---|---|"]
    for mode, run in runs.items():
        goal = GOALS.get(mode)
        verdict = "-" if goal is None else f"<= {goal:.0f} GB: {'met' if run['peak'] <= goal * GB else 'NOT met'}"
        lines.append(f"| {mode} | {gb(run['peak'])} | {run['peak'] / 2**30:.2f} | {run['peak_phase']} | "
                     f"{gb(run['phases']['main_dit']['total'])} | {verdict} |")
    return "\n".join(lines) + "\n"


DESCRIBE = (
    "Two segments at {h}x{w}, {frames} frames ({latents} latents) each, CFG batch 2, {dtype}. `w` = the weights of "
    "the network computing in that phase (all networks in `all resident`; in the streamed modes only the resident "
    "part of the main DiT, the streamed layer's copy being counted in `a`), `a` = everything else alive at the "
    "phase's peak: activations, the fp8 upcast matrix, a streamed layer, the reference K/V and the loop's carried "
    "tensors."
)


def main(argv=None) -> int:
    import shlex
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--offload-blocks", type=int, default=None,
                        help="N of the 'fp8 + offload N' mode (default: all of the main DiT's layers)")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    from hallo_pipeline.hallo3.config import Hallo3Config

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    result = estimate(dtype=dtype, offload_blocks=args.offload_blocks)
    for mode, run in result["modes"].items():
        print(f"{mode:18s} peak {run['peak'] / GB:6.2f} GB in {run['peak_phase']}")
    if args.out:
        config = Hallo3Config()
        seg, dit = config.segment, config.dit
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
