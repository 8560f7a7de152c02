"""Speed and GPU memory of one full-size Hallo3 segment per memory mode, random weights (issue #13, item 6).

    python -m benchmarks.hallo3_gpu --config full --device cuda --dtype bf16 \
        --out benchmarks/results/hallo3-full-cuda-bf16            # one H100/H200, ~3-4 min (budget 8)
    python -m benchmarks.hallo3_gpu --config tiny --device cpu --steps 1 --out /tmp/hallo3-tiny   # CI-sized, seconds
    python -m benchmarks.hallo3_gpu --config full --device meta --out /tmp/hallo3-meta  # the full-size path, no data

Made to be run ONCE on a lent GPU with little time: bounded (`--budget-s`, checked before every phase and after
every sampler step; SIGTERM stops it the same way), and the results are written after every mode, so a mode that
fails (out of memory, ...) is recorded with its error and the next one runs.

The networks are the release's sizes (main + reference DiT, diffusers' CogVideoX VAE, T5-v1.1-XXL's encoder from
transformers' config) built by `benchmarks.hallo3_memory_estimate`'s builders on `meta`, then given random values
on the host in the working dtype: no file is read, and speed and memory do not depend on the values. They are built
once; the modes run in an order in which each one's main DiT follows from the one before by the library's own
in-place conversions (`MemoryOptions.apply`: fp8 storage, then layers streamed from the host), and the main DiT
alone is built again where that is not possible. wav2vec2 is not run: the audio features are random, of the shape
`VideoConditions` takes.

Per mode, the library's `Hallo3Generator` with `Placement(device, offload=cpu)` (everything on the GPU for the
opt-in `all-resident`) and the mode's `MemoryOptions`: one prompt encode, then ONE segment (49 frames at 480x720
for `full`) with `--steps` sampler steps. For each phase (T5 encode, VAE encode, reference bank, main DiT, VAE
decode): the seconds to move its network in, to compute and to move it out (CUDA synchronised), the allocator's
peak (`torch.cuda.max_memory_allocated`, reset before the move in, so weights are counted as the estimate counts
them) and the host's peak RSS (VmHWM, restarted per phase); per sampler step, its seconds. Each phase's peak is
printed beside the `meta` estimate of `benchmarks/hallo3_memory_estimate.py` for the same mode.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import random
import shlex
import signal
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from benchmarks.hallo3_memory_estimate import META, PHASE_HELP, PHASES, T5_XXL, Mode, build_t5, modes
from benchmarks.host_memory import high_water_mib, reset_high_water
from hallo_pipeline.devices import Placement

GB = 1e9
REPO = Path(__file__).resolve().parents[1]
COMMITTED_ESTIMATE = REPO / "benchmarks" / "results" / "hallo3-full-estimate-bf16.json"
# CLI names of the estimate's modes (`hallo3_memory_estimate.modes`, same order).
MODE_KEYS = ("all-resident", "default", "fp8", "fp8-offload", "tiled-decode", "low-vram")
# The order they run in, whatever order they are asked in: each main DiT follows from the one before in place
# (fp8 storage, then streaming; `MainState.reachable`). `all-resident` is opt-in: its ~56 GB fit an 80 GB card, but
# the modes are the others, and it would move every network to the GPU at once.
RUN_ORDER = ("all-resident", "default", "tiled-decode", "fp8", "low-vram", "fp8-offload")
DEFAULT_MODES = "default,tiled-decode,fp8,low-vram"
NETWORK_PHASE = {"t5": "t5_encode", "reference": "reference_bank", "main": "main_dit"}
PROMPT = "A woman talking to the camera"  # T5 always encodes the full 226 tokens: the text does not matter


class Stop(Exception):
    """The budget is spent (or SIGTERM came): the mode stops where it is, the rest are skipped."""


# ----------------------------------------------------------------------------------------------------------------
# sizes
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    name: str
    config: object  # Hallo3Config
    vae: object  # VAEConfig
    t5: dict  # transformers.T5Config arguments


def make_setup(name: str) -> Setup:
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.vae import VAEConfig

    if name == "full":
        return Setup("full", Hallo3Config(), VAEConfig(), dict(T5_XXL))
    from hallo_pipeline.hallo3.tiny_models import T5_VOCAB, TINY_CONFIG

    config = Hallo3Config.from_dict(TINY_CONFIG)
    width = config.dit.text_hidden_size  # the tiny T5 of `testing.tiny_t5` (one layer, 4 heads)
    t5 = dict(vocab_size=T5_VOCAB, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=1, num_heads=4,
              feed_forward_proj="gated-gelu")
    # The tiny VAE narrowed to 8 channels (4 norm groups), same layout and latent: at 32 its 49-frame decode
    # alone takes 7-20 s on a shared 2-core CPU, per mode; at 8 about 1.5 s.
    vae = VAEConfig.from_dict({**TINY_CONFIG["vae"], "ch": 8, "norm_groups": 4})
    return Setup("tiny", config, vae, t5)


# ----------------------------------------------------------------------------------------------------------------
# random weights without files
# ----------------------------------------------------------------------------------------------------------------
class RandomFill:
    """New tensors of random values at the scales of `testing.tiny_folder.random_init` (matrices N(0, 1/fan_in),
    norm scales 1 + N(0, 0.1^2), biases N(0, 0.05^2)), drawn from one pool of N(0, 1) values at a random offset.

    A pool copied rather than `randn` per tensor: torch's CPU generator is serial, and 20 B values would take
    minutes on the host; a scaled copy is memory-bound and threaded. The values repeat every pool length, which
    neither speed nor memory can tell. The scales keep activations in range: weights that shrink them into
    subnormal floats make the CPU run many times slower (not a GPU)."""

    def __init__(self, seed: int = 0, size: int = 1 << 24):
        self.pool = torch.randn(size, generator=torch.Generator().manual_seed(seed))
        self.rng = random.Random(seed)
        self._typed: dict[torch.dtype, torch.Tensor] = {}

    def new(self, like: torch.Tensor, device: torch.device, name: str = "") -> torch.Tensor:
        pool = self._typed.setdefault(like.dtype, self.pool.to(like.dtype))
        out = torch.empty(like.shape, dtype=like.dtype, device=device)
        if like.ndim > 1:
            scale, shift = (1.0 / max(1, like[0].numel())) ** 0.5, 0.0
        else:
            scale, shift = (0.1, 1.0) if name.endswith("weight") else (0.05, 0.0)
        flat, n = out.view(-1), out.numel()
        start, offset = 0, self.rng.randrange(pool.numel())
        while start < n:
            k = min(n - start, pool.numel() - offset)
            torch.mul(pool[offset : offset + k], scale, out=flat[start : start + k])
            start, offset = start + k, 0
        return out.add_(shift) if shift else out


def materialise(module: nn.Module, device: torch.device, fill: RandomFill, buffers: dict | None = None) -> nn.Module:
    """Give a module built on `meta` random parameters on `device` (tied parameters stay tied) and the buffers
    named in `buffers` their values; a `meta` device leaves it as it is (shapes only)."""
    if device.type == "meta":
        return module
    buffers = buffers or {}
    made: dict[int, nn.Parameter] = {}
    for prefix, sub in module.named_modules(remove_duplicate=False):
        for name, p in list(sub._parameters.items()):
            if p is not None and p.is_meta:
                if id(p) not in made:
                    made[id(p)] = nn.Parameter(fill.new(p, device, name), requires_grad=False)
                sub._parameters[name] = made[id(p)]
        for name, b in list(sub._buffers.items()):
            if b is not None and b.is_meta:
                full = f"{prefix}.{name}" if prefix else name
                if full not in buffers:
                    raise RuntimeError(f"buffer {full} has no values to materialise with")
                sub._buffers[name] = buffers[full].to(device)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"still on meta after materialising: {left[:3]}")
    return module


def rope_buffers(config, prefixes=("main.", "reference.")) -> dict[str, torch.Tensor]:
    """The DiTs' only buffers: the float32 RoPE tables, computed from the config as `model.load_hallo3` does."""
    from hallo_pipeline.hallo3.rope import rope_tables

    cos, sin = rope_tables(config.dit)
    return {f"{p}mixins.pos_embed.freqs_{n}": t for p in prefixes for n, t in (("cos", cos), ("sin", sin))}


class RandomPromptT5:
    """`T5TextEncoder`'s interface over a T5 encoder without a tokenizer: a fixed random prompt of `length` ids.
    The release encodes all `length` tokens whatever the prompt (padding included, no mask), so its cost is
    the same."""

    def __init__(self, model: nn.Module, length: int):
        self.model, self.length = model, length
        self.ids = torch.randint(2, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def encode(self, prompt: str) -> torch.Tensor:
        ids = self.ids.to(next(self.model.parameters()).device)
        return self.model(input_ids=ids).last_hidden_state.to(torch.float32)


@dataclass(frozen=True)
class MainState:
    """How the main DiT is held now: fp8 storage and how many of its layers are streamed."""

    fp8: bool = False
    offload_blocks: int = 0

    def reachable(self, want: "MainState") -> bool:
        """In place, fp8 can only be added, and streaming only to a DiT not streamed yet (after its fp8)."""
        if want == self:
            return True
        return self.offload_blocks == 0 and (want.fp8 or not self.fp8)


class Models:
    """The four networks at one size, built once on `host` in `dtype`; the main DiT converted per mode."""

    def __init__(self, setup: Setup, host: torch.device, dtype: torch.dtype, seed: int = 0):
        from hallo_pipeline.hallo3.model import build_hallo3
        from hallo_pipeline.hallo3.vae import Hallo3VAE, build_vae

        self.setup, self.host, self.dtype = setup, host, dtype
        self.fill = RandomFill(seed)
        self.nets = materialise(build_hallo3(setup.config, META, dtype), host, self.fill, rope_buffers(setup.config))
        vae = build_vae(setup.vae, META).to(dtype).eval().requires_grad_(False)
        self.vae = Hallo3VAE(materialise(vae, host, self.fill), setup.vae)
        self.t5 = RandomPromptT5(materialise(build_t5(setup.t5, dtype), host, self.fill),
                                 setup.config.dit.text_length)
        self.state = MainState()
        self.rebuilds = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"t5": self.t5.model, "reference": self.nets.reference, "main": self.nets.main, "vae": self.vae.model}

    def weight_bytes(self) -> dict[str, int]:
        from benchmarks.memory_estimate import module_bytes

        return {name: module_bytes(m) for name, m in self.modules().items()}

    def rebuild_main(self) -> None:
        from hallo_pipeline.hallo3.model import build_hallo3

        del self.nets.main  # its host memory goes before the new one is made
        gc.collect()
        fresh = build_hallo3(self.setup.config, META, self.dtype).main
        self.nets.main = materialise(fresh, self.host, self.fill, rope_buffers(self.setup.config, ("",)))
        self.state = MainState()
        self.rebuilds += 1

    def prepare_main(self, mode: Mode, device: torch.device | None = None) -> None:
        """The main DiT as `mode` holds it, by the library's `MemoryOptions.apply` (only what is not applied yet).
        The fp8 conversion runs on `device` when it is a GPU (a few seconds there; minutes of the host's cores for
        ~9 B weights), and on the host if that fails: `store_fp8` converts what is still plain `nn.Linear`, so a
        half-done conversion is finished there."""
        from hallo_pipeline.hallo3.pipeline import MemoryOptions

        want = MainState(mode.fp8, mode.offload_blocks)
        if want == self.state:
            return
        if not self.state.reachable(want):
            self.rebuild_main()
        main = self.nets.main
        if want.fp8 and not self.state.fp8 and device is not None and device.type == "cuda":
            try:
                MemoryOptions(fp8=True).apply(main.to(device))
            except torch.OutOfMemoryError:
                pass
            finally:
                main.to(self.host)
                free_device(device)
        MemoryOptions(fp8=want.fp8, offload_blocks=want.offload_blocks).apply(main)
        self.state = want


# ----------------------------------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------------------------------
class Clock:
    """Seconds since the start, and the budget after which the run stops."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s
        self.stop_reason: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self) -> None:
        if self.stop_reason is None and self.elapsed() > self.budget_s:
            self.stop_reason = f"budget of {self.budget_s:.0f} s spent"
        if self.stop_reason is not None:
            raise Stop(self.stop_reason)


class TimedPlacement(Placement):
    """The library's placement (moves a network to the device for its `use` block and back after), timing and
    metering each phase: the move in, the compute, the move out, the allocator's peak (reset before the move in)
    and the host's peak RSS; and, through `on_step`, each sampler step."""

    def __init__(self, device: torch.device, offload: torch.device | None, names: dict[int, str], clock: Clock):
        super().__init__(device, offload)
        self.names, self.clock = names, clock
        self.phases: dict[str, dict] = {}
        self._last: str | None = None
        self._row: dict | None = None

    def sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _phase(self, network: str) -> str:
        if network == "vae":
            return "vae_decode" if self._last == "main" else "vae_encode"
        return NETWORK_PHASE[network]

    @contextlib.contextmanager
    def use(self, *modules: nn.Module, memory: int = 0) -> Iterator[None]:
        (network,) = {self.names[id(m)] for m in modules}
        phase = self._phase(network)
        self.clock.check()
        row = self.phases[phase] = {"network": network, "status": "running", "step_s": []}
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        row["host_peak_reset"] = reset_high_water()
        t0 = self.sync()
        moved_in = False
        try:
            with super().use(*modules, memory=memory):
                t1 = self.sync()
                moved_in = True
                row["load_s"] = t1 - t0
                self._row, row["compute_start"] = row, t1
                try:
                    yield
                finally:
                    t2 = self.sync()
                    row["compute_s"] = t2 - t1
                    self._row = None
                    if cuda:
                        row["peak_bytes"] = torch.cuda.max_memory_allocated(self.device)
                        row["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(self.device)
            row["unload_s"] = self.sync() - t2
            row["status"] = "ok"
        except BaseException as exc:
            row["status"] = "stopped" if isinstance(exc, Stop) else "error"
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if not moved_in:
                row["load_s"] = self.sync() - t0
            raise
        finally:
            row.pop("compute_start", None)
            row["host_peak_gb"] = high_water_mib() * 2**20 / GB
            self._last = network

    def on_step(self, segment: int, step, x: torch.Tensor, denoised: torch.Tensor) -> None:
        """After each sampler step (the generator's `on_step`): its seconds, since the last step or, for the
        first, since the main DiT's compute began (so it holds the bank's K/V and the face/audio projections)."""
        row = self._row
        now = self.sync()
        if row is not None:
            last = row.get("_last_step", row["compute_start"])
            row["step_s"].append(now - last)
            row["_last_step"] = now
        self.clock.check()


def step_summary(step_s: list[float]) -> dict:
    """s/step: the median of the steps after the first (the first also computes the reference K/V, and meets
    cold kernels), or the first when it is the only one."""
    if not step_s:
        return {"steps": 0}
    steady = step_s[1:] or step_s
    return {"steps": len(step_s), "first_step_s": step_s[0], "s_per_step": statistics.median(steady)}


def random_conditions(setup: Setup, text: torch.Tensor, seed: int = 0):
    """`VideoConditions` for one segment: random image, reference, face embedding and audio features (the shapes
    wav2vec2 and the face models would give), the audio as long as one segment's new frames."""
    from hallo_pipeline.hallo3.segments import LoopSettings, VideoConditions

    config = setup.config
    settings = LoopSettings.from_config(config, steps=1)
    h, w = config.segment.image_size
    ap = config.audio_proj
    g = torch.Generator().manual_seed(seed)
    return VideoConditions(
        image=torch.rand(1, 3, h, w, generator=g) * 2 - 1,
        reference=torch.rand(1, 3, h, w, generator=g) * 2 - 1,
        face_embedding=torch.randn(1, config.face_proj.clip_embeddings_dim, generator=g),
        text=text,
        audio=torch.randn(settings.segment_frames, ap.seq_len, ap.blocks, ap.channels, generator=g),
        frames=settings.stride,  # one segment: its 47 new frames (the features padded to the 49-frame clip)
    )


def free_device(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def shapes_only(device: torch.device) -> contextlib.AbstractContextManager:
    """On `meta`, the estimate's tracker: it turns the loop's copies to the host into zero-filled CPU tensors, which
    `meta` alone refuses; elsewhere nothing."""
    if device.type != "meta":
        return contextlib.nullcontext()
    from benchmarks.memory_estimate import DeviceMemoryModel

    return DeviceMemoryModel()


def run_mode(mode: Mode, models: Models, device: torch.device, host: torch.device, steps: int, clock: Clock) -> dict:
    """One prompt encode and one segment of `mode` through the library's generator -> the mode's record."""
    from hallo_pipeline.hallo3.pipeline import Hallo3Generator

    out: dict = {"mode": mode.__dict__, "status": "running"}
    t0 = time.perf_counter()
    placement = None
    try:
        clock.check()
        t = time.perf_counter()
        rebuilds = models.rebuilds
        models.prepare_main(mode, device)
        out["prepare_main_s"] = time.perf_counter() - t
        out["main_rebuilt"] = models.rebuilds > rebuilds
        offload = None if mode.all_resident or device.type != "cuda" else host
        network_of = {id(m): name for name, m in models.modules().items()}
        placement = TimedPlacement(device, offload, network_of, clock)
        t = placement.sync()
        for module in models.modules().values():
            placement.home(module)  # all-resident: every network to the GPU now
        out["home_s"] = placement.sync() - t
        generator = Hallo3Generator(models.nets, models.vae, models.t5, None, models.setup.config,
                                    placement=placement, memory=mode.memory())
        with shapes_only(device):
            conditions = random_conditions(models.setup, generator.encode_prompt(PROMPT))
            segments = list(generator.generate(conditions, steps=steps, on_step=placement.on_step))
        out["frames"] = sum(s.frames.shape[0] for s in segments)
        del segments
        out["status"] = "ok"
    except Stop as exc:
        out["status"], out["error"] = "stopped", str(exc)
    except Exception as exc:  # noqa: BLE001 - one mode's failure (e.g. out of memory) must not end the run
        out["status"] = "error"
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["traceback"] = traceback.format_exc(limit=-6)[-4000:]
    finally:
        for module in models.modules().values():  # back on the host, whatever happened
            module.to(host)
        free_device(device)
    out["seconds"] = time.perf_counter() - t0
    phases = placement.phases if placement is not None else {}
    for row in phases.values():
        row.pop("_last_step", None)
        row.update(step_summary(row["step_s"]) if row["network"] == "main" else {})
    out["phases"] = phases
    out["host_peak_gb"] = max((r["host_peak_gb"] for r in phases.values()), default=None)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the estimate to compare with
# ----------------------------------------------------------------------------------------------------------------
def load_estimate(source: str, setup: Setup, dtype: torch.dtype, selected: list[Mode]) -> tuple[str, dict]:
    """(where it came from, mode name -> phase -> estimated peak bytes). `auto`: the committed full-size bf16
    estimate where it applies (two segments: each phase's peak over both), else the estimate run here on `meta`
    for one segment; `meta`: always run here; `none`; or a path to an estimate's JSON."""
    if source == "none":
        return "none", {}
    path = None
    if source == "auto" and setup.name == "full" and dtype == torch.bfloat16 and COMMITTED_ESTIMATE.is_file():
        path = COMMITTED_ESTIMATE
    elif source not in ("auto", "meta"):
        path = Path(source)
    if path is not None:
        runs = json.loads(path.read_text())["modes"]
        return (f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} (two segments)",
                {name: {p: row["total"] for p, row in run["phases"].items()} for name, run in runs.items()})
    from benchmarks.hallo3_memory_estimate import run_mode as estimate_mode

    found = {}
    for mode in selected:
        run = estimate_mode(mode, setup.config, setup.vae, setup.t5, dtype, segments=1)
        found[mode.name] = {p: row["total"] for p, row in run["phases"].items()}
    return "benchmarks/hallo3_memory_estimate.py run here on meta (one segment)", found


# ----------------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------------
def _s(value) -> str:
    return "-" if value is None else f"{value:.3f}" if value >= 0.01 else f"{value:.2g}"


def _gb(value) -> str:
    return "n/a" if value is None else f"{value / GB:.2f}" if value >= GB else f"{value / GB:.3g}"


def markdown(result: dict) -> str:
    memory = result["device_type"] == "cuda"
    lines = [
        f"# Hallo3, one segment per memory mode: {result['config']} size, {result['device_type']}, {result['dtype']}",
        "", f"`{result['command']}`", "",
        f"device **{result['device']}**"
        + (f" ({result['device_total_gb']:.1f} GB, {result['device_free_gb_at_start']:.1f} GB free after the CUDA "
           "context)" if "device_free_gb_at_start" in result else "")
        + f"; torch {result['versions']['torch']}, diffusers "
        f"{result['versions']['diffusers']}, transformers {result['versions']['transformers']}; "
        f"{result['size'][0]}x{result['size'][1]}, {result['segment_frames']} frames ({result['latent_frames']} "
        f"latents), CFG batch 2, {result['steps']} sampler steps; random weights; status **{result['status']}** after "
        f"{result['elapsed_s']:.1f} s (budget {result['budget_s']:.0f} s).", "",
        f"Built the networks on the host in {result['build']['seconds']:.1f} s (host peak RSS "
        f"{result['build']['host_peak_gb']:.1f} GB); weights GB: "
        + ", ".join(f"{k} {_gb(v)}" for k, v in result["build"]["weight_bytes"].items()) + ".", "",
        "Seconds are wall-clock with the device synchronised: `load` moves the phase's network to the device, "
        "`unload` back to the host (nothing moves on the CPU, nor in `all resident`). s/step is the median of the "
        "steps after the first; the first also computes the reference K/V. Peak GB (10^9 bytes) is "
        "`torch.cuda.max_memory_allocated` from the move in to the end of the compute, beside the estimate "
        f"({result['estimate_source']}); memory columns are n/a off CUDA.", "",
    ]
    for name, run in result["modes"].items():
        lines += [f"## {name}: {run['status']}" + (f" ({run['error']})" if run.get("error") else ""), ""]
        if run["status"] in ("skipped", "pending"):
            continue
        lines += [
            f"{run['seconds']:.1f} s in all"
            + (f"; main DiT converted for the mode in {run['prepare_main_s']:.1f} s"
               + (" (built again first)" if run.get("main_rebuilt") else "") if run.get("prepare_main_s", 0) > 0.05
               else "")
            + (f"; networks homed in {run['home_s']:.1f} s" if run.get("home_s", 0) > 0.05 else "")
            + (f"; {run['frames']} frames" if "frames" in run else "")
            + (f"; host peak RSS {run['host_peak_gb']:.1f} GB" if run.get("host_peak_gb") else ""), "",
            "| phase | load s | compute s | unload s | s/step (first) | peak GB measured | peak GB estimated "
            "| measured / estimated |", "|---|---|---|---|---|---|---|---|",
        ]
        estimate = result["estimate"].get(name, {})
        for phase in PHASES:
            row = run["phases"].get(phase)
            if row is None:
                lines.append(f"| {phase} | not run | | | | | {_gb(estimate.get(phase))} | |")
                continue
            steps = (f"{row['s_per_step']:.3f} ({row['first_step_s']:.3f})" if row.get("s_per_step") is not None
                     else "-")
            measured = row.get("peak_bytes") if memory else None
            ratio = f"{measured / estimate[phase]:.2f}" if measured and estimate.get(phase) else "n/a"
            status = "" if row["status"] == "ok" else f" ({row['status']})"
            lines.append(f"| {phase}{status} | {_s(row.get('load_s'))} | {_s(row.get('compute_s'))} | "
                         f"{_s(row.get('unload_s'))} | {steps} | {_gb(measured)} | {_gb(estimate.get(phase))} | "
                         f"{ratio} |")
        lines.append("")
    lines += ["Phases: " + "; ".join(f"`{p}` {PHASE_HELP[p]}" for p in PHASES) + "."]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path | None) -> None:
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=1)), (".md", markdown(result))):
        path = out.with_name(out.name + suffix)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # a run killed while writing leaves the last whole file


def versions() -> dict:
    import diffusers
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__}


def warm_up(device: torch.device, dtype: torch.dtype) -> None:
    """The CUDA context and cuBLAS handle before the first timed phase (they would land in the first T5 encode)."""
    if device.type != "cuda":
        return
    a = torch.randn(256, 256, device=device, dtype=dtype)
    (a @ a).sum().item()
    q = torch.randn(1, 2, 64, 64, device=device, dtype=dtype)
    torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().item()
    del a, q
    torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------------
def select_modes(text: str, num_layers: int, offload_blocks: int | None) -> list[tuple[str, Mode]]:
    by_key = dict(zip(MODE_KEYS, modes(num_layers, offload_blocks)))
    asked = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in asked if k not in by_key]
    if unknown or not asked:
        raise ValueError(f"unknown modes {unknown}; choose from {', '.join(RUN_ORDER)}")
    return [(k, by_key[k]) for k in RUN_ORDER if k in asked]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu (tiny only), or meta (shapes only)")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="auto: bf16 on cuda and meta, fp32 on the CPU")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps of the one segment (default 4)")
    parser.add_argument("--modes", default=DEFAULT_MODES,
                        help=f"comma-separated, run in the order {','.join(RUN_ORDER)} (default {DEFAULT_MODES})")
    parser.add_argument("--offload-blocks", type=int, default=None,
                        help="N of the fp8-offload mode (default: all of the main DiT's layers)")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="after this many seconds from the start, stop the mode running and skip the rest")
    parser.add_argument("--estimate", default="auto",
                        help="auto (the committed full-size estimate, else run on meta), meta, none, or a JSON path")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of torch (default: torch's); 1 on a CPU shared with other jobs, where "
                             "more threads than free cores make the CPU run many times slower")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md (after every mode)")
    args = parser.parse_args(argv)
    try:  # before anything is built: a lent GPU machine may lack one of them (its image has no diffusers)
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        parser.error(f"{exc.name} is not installed: this benchmark needs diffusers (>= 0.31) and transformers; on a "
                     "machine without network access, carry their wheels (pip download --no-deps ...)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    clock = Clock(args.budget_s)

    from hallo_pipeline.devices import DTYPES, resolve_device
    from hallo_pipeline.errors import InputError

    if args.device == "meta":
        device = META
    else:
        try:
            device = resolve_device(args.device)
        except InputError as exc:
            parser.error(str(exc))
    if device.type == "cpu" and args.config == "full":
        parser.error("the full size on the CPU would take hours and ~40 GB; use --device meta to run its path "
                     "without data, or --config tiny")
    dtype_name = args.dtype if args.dtype != "auto" else ("fp32" if device.type == "cpu" else "bf16")
    dtype = DTYPES[dtype_name]
    setup = make_setup(args.config)
    try:
        selected = select_modes(args.modes, setup.config.dit.num_layers, args.offload_blocks)
    except ValueError as exc:
        parser.error(str(exc))
    host = META if device.type == "meta" else torch.device("cpu")

    def on_term(signum, frame):
        clock.stop_reason = f"signal {signum}"
        raise Stop(clock.stop_reason)

    previous_handler = signal.signal(signal.SIGTERM, on_term)
    seg, dit = setup.config.segment, setup.config.dit
    result: dict = {
        "command": " ".join(["python -m benchmarks.hallo3_gpu",
                             *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "config": setup.name, "device": str(device), "device_type": device.type, "dtype": dtype_name,
        "steps": args.steps, "budget_s": args.budget_s, "size": list(seg.image_size),
        "segment_frames": dit.num_frames, "latent_frames": dit.latent_frames, "versions": versions(),
        "threads": torch.get_num_threads(), "status": "building", "elapsed_s": 0.0,
        "build": {"seconds": 0.0, "host_peak_gb": 0.0, "weight_bytes": {}},
        "modes": {mode.name: {"mode": mode.__dict__, "status": "pending", "phases": {}} for _, mode in selected},
        "estimate_source": "not read yet", "estimate": {},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        result["device"] = props.name
        result["device_total_gb"] = props.total_memory / GB
    try:
        source, estimate = load_estimate(args.estimate, setup, dtype, [m for _, m in selected])
    except Exception as exc:  # noqa: BLE001 - the comparison is a bonus: the measurement must still run
        source, estimate = f"failed ({type(exc).__name__}: {exc})", {}
    result["estimate_source"], result["estimate"] = source, estimate
    print(f"estimate: {source}", flush=True)
    write(result, args.out)
    exit_code = 0
    try:
        t = time.perf_counter()
        models = Models(setup, host, dtype)
        warm_up(device, dtype)
        result["build"] = {"seconds": time.perf_counter() - t, "host_peak_gb": high_water_mib() * 2**20 / GB,
                           "weight_bytes": models.weight_bytes()}
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            result["device_free_gb_at_start"] = free / GB  # the CUDA context and cuBLAS take their share first
        print(f"built in {result['build']['seconds']:.1f} s", flush=True)
        result["status"] = "running"
        for _, mode in selected:
            if clock.stop_reason is not None or clock.elapsed() > args.budget_s:
                clock.stop_reason = clock.stop_reason or f"budget of {args.budget_s:.0f} s spent"
                result["modes"][mode.name] = {"mode": mode.__dict__, "status": "skipped",
                                              "error": clock.stop_reason, "phases": {}}
                continue
            print(f"mode {mode.name} ...", flush=True)
            run = result["modes"][mode.name] = run_mode(mode, models, device, host, args.steps, clock)
            result["elapsed_s"] = clock.elapsed()
            print(f"mode {mode.name}: {run['status']} in {run['seconds']:.1f} s"
                  + (f" ({run['error']})" if run.get("error") else ""), flush=True)
            write(result, args.out)
        result["status"] = "done" if clock.stop_reason is None else f"stopped: {clock.stop_reason}"
    except Stop as exc:  # SIGTERM while building, or between modes
        result["status"] = f"stopped: {exc}"
        exit_code = 1
    except Exception as exc:  # noqa: BLE001 - the build failed: say so in the results
        result["status"] = f"error: {type(exc).__name__}: {exc}"[:2000]
        result["traceback"] = traceback.format_exc()[-4000:]
        exit_code = 1
    finally:
        for run in result["modes"].values():
            if run["status"] == "pending":
                run.update(status="skipped", error=result["status"])
        result["elapsed_s"] = clock.elapsed()
        write(result, args.out)
        signal.signal(signal.SIGTERM, previous_handler)
    print(markdown(result), flush=True)
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
