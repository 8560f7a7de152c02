"""Peak GPU memory of a full-size generation, estimated on a machine without a GPU.

    python -m benchmarks.memory_estimate --out benchmarks/results/full-estimate-fp16-512   # the committed table
    python -m benchmarks.memory_estimate --size 768 --decode-batch 1,4,8 --modes default,low_vram

The real `ClipSampler` runs the real networks (random weights are not even needed: they live on
the `meta` device, which has shapes but no data), and every tensor the run creates on that
device is counted from creation until Python frees it, the way the CUDA caching allocator's
`max_memory_allocated` counts them. Two things are modelled rather than run:

- attention: on `meta`, `scaled_dot_product_attention` takes the math path, which materialises
  the L x L score matrix; on a GPU with fp16/bf16 PyTorch runs the flash kernel, which stores
  only the output and a float32 log-sum-exp per query row. `FlashAttentionFootprint` allocates
  exactly those two;
- weights: they exist before the run, so they are added as resident bytes, all of them in the
  default mode, and the VAE and ReferenceNet only inside their `Placement.use(...)` blocks in
  the low-VRAM mode (`MeteredPlacement`).

Not counted: the CUDA context and the cuBLAS/cuDNN workspaces (together roughly 0.5-1 GB in
`nvidia-smi`, outside PyTorch's allocator), allocator rounding and fragmentation, and wav2vec2's
activations (it runs before sampling, on 60 s of CNN input at most; its weights are counted).
A GPU run of `benchmarks/run.py` reports the measured `max_memory_allocated` beside this
estimate, which is how the model is to be checked.

The same run also shows the sampler's traffic between host and GPU: copies are counted, and a
value read on the host (`.item()`, `if tensor:`) cannot happen at all, since `meta` has no values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hallo_pipeline.devices import Placement

META = torch.device("meta")
GIB = 2**30


def module_bytes(*modules: torch.nn.Module) -> int:
    return sum(t.nbytes for m in modules for t in [*m.parameters(), *m.buffers()])


class DeviceMemoryModel(TorchDispatchMode):
    """Live and peak bytes of the tensors created on the `meta` device (standing in for the GPU).

    A copy to the CPU (`.cpu()`, `.to("cpu")`) becomes a real, zero-filled CPU tensor of the
    right shape, so the run goes on on the host exactly as it would after a GPU, and is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.resident = 0  # weights, added and removed by MeteredPlacement
        self.to_host = 0  # device -> host copies (each one waits for the GPU)
        self.to_device = 0  # host -> device copies
        self._counted: dict[int, int] = {}

    @property
    def current(self) -> int:
        return self.live + self.resident

    def _note_peak(self) -> None:
        self.peak = max(self.peak, self.current)

    def add_resident(self, nbytes: int) -> None:
        self.resident += nbytes
        self._note_peak()

    def _forget(self, key: int, nbytes: int) -> None:
        self._counted.pop(key, None)
        self.live -= nbytes

    def _register(self, tensor: torch.Tensor, input_storages: set[int]) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._counted or key in input_storages:
            return  # a view or an in-place result: no new memory (weights' views included)
        nbytes = storage.nbytes()
        self._counted[key] = nbytes
        self.live += nbytes
        self._note_peak()
        # PyTorch keeps a storage's Python object alive as long as the storage, so this runs
        # exactly when the memory would go back to the allocator.
        weakref.finalize(storage, self._forget, key, nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and args[0].device != kwargs.get("device", args[0].device):
            if args[0].device == META:
                self.to_host += 1
                return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
            self.to_device += 1
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.device == META}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device == META:
                self._register(t, inputs)
        return out


class FlashAttentionFootprint(TorchFunctionMode):
    """`scaled_dot_product_attention` on `meta` with the memory of the GPU's flash kernel."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, v = args[0], args[2] if len(args) > 2 else kwargs["value"]
            logsumexp = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)  # noqa: F841 (held till the output exists)
            return torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        return func(*args, **kwargs)


class MeteredPlacement(Placement):
    """A `Placement` on `meta` that counts module weights as resident while they are on the GPU.

    low_vram=False: every module given to `home` is resident for the whole run (the default
    mode). low_vram=True: they are resident only inside `use(...)`, as the real offloading does.
    """

    def __init__(self, memory: DeviceMemoryModel, low_vram: bool):
        super().__init__(META, None)
        self.memory, self.low_vram = memory, low_vram

    def home(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.low_vram:
            self.memory.add_resident(module_bytes(module))
        return module

    @contextlib.contextmanager
    def use(self, *modules: torch.nn.Module) -> Iterator[None]:
        if not self.low_vram:
            yield
            return
        nbytes = module_bytes(*modules)
        self.memory.add_resident(nbytes)
        try:
            yield
        finally:
            self.memory.resident -= nbytes


@dataclass
class Estimate:
    mode: str
    size: int
    dtype: str
    decode_batch: int
    peak_gib: float
    weights_resident_gib: float  # at the end of the run (the denoiser's, plus the rest in default mode)
    phases_gib: dict
    to_host: int  # device -> host copies in the whole run
    to_device: int  # host -> device copies in the whole run

    def as_dict(self) -> dict:
        return self.__dict__


# sd-vae-ft-mse's architecture (the Hallo release's VAE).
FULL_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32)


def build_meta_models(
    config=None, dtype: torch.dtype = torch.float16, vae_kwargs: dict | None = None, audio_config=None
):
    """HalloNet (full size unless `config`), the VAE (sd-vae-ft-mse unless `vae_kwargs`) and
    wav2vec2 (base unless `audio_config`, a transformers `Wav2Vec2Config`), on `meta`."""
    from diffusers import AutoencoderKL
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from hallo_pipeline.hallo.config import NetConfig
    from hallo_pipeline.hallo.models import HalloNet

    with torch.device(META):
        net = HalloNet(config or NetConfig())
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, **(vae_kwargs or FULL_VAE),
        )
        wav2vec = Wav2Vec2Model(audio_config or Wav2Vec2Config())
    return tuple(m.to(dtype).eval().requires_grad_(False) for m in (net, vae, wav2vec))


MODES = ("baseline", "default", "low_vram")


def estimate_generation(
    net, vae, audio_model, mode: str, size: int = 512, decode_batch: int = 8, clips: int = 2, steps: int = 2,
    clip_length: int = 16,
) -> Estimate:
    """Peak device memory of sampling `clips` clips in `mode` (benchmarks/run.py's modes:
    "baseline" runs the ReferenceNet on all six rows every clip, "low_vram" offloads).

    Two clips cover everything that lives across clips (the portrait's cached ReferenceNet rows,
    the previous clip's frames); two steps per clip cover everything that lives across steps.
    """
    from hallo_pipeline.config import RegionWeights
    from hallo_pipeline.hallo.models import RegionMasks
    from hallo_pipeline.hallo.sampling.clip_loop import ClipInputs, ClipSampler, SamplerSettings
    from hallo_pipeline.hallo.sampling.guided_step import encode_identity
    from hallo_pipeline.hallo.vae import LatentCodec

    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    memory = DeviceMemoryModel()
    placement = MeteredPlacement(memory, low_vram=mode == "low_vram")
    # Always on the GPU while sampling: the denoiser and the small conditioning networks.
    memory.add_resident(module_bytes(net.denoising_unet, net.face_locator, net.imageproj, net.audioproj))
    placement.home(vae)
    placement.home(net.reference_unet)
    placement.home(audio_model)  # the pipeline keeps wav2vec2 where it keeps the VAE
    phases = {}
    lat = size // 8
    ap = net.config.audioproj
    with torch.no_grad(), FlashAttentionFootprint(), memory:
        masks = [RegionMasks(*(torch.rand((lat >> i) ** 2) for _ in range(3)))
                 for i in range(len(net.config.unet.block_out_channels))]
        face_region = torch.zeros(3, size, size)
        identity = encode_identity(net, torch.randn(1, 512), face_region[None], masks)
        inputs = ClipInputs(
            identity=identity,
            reference_image=torch.rand(3, size, size) * 2 - 1,
            face_region=face_region,
            audio_features=torch.randn(clips * clip_length, ap.window, ap.layers, ap.channels),
        )
        settings = SamplerSettings(steps=steps, clip_length=clip_length, weights=RegionWeights(),
                                   cache_reference=mode != "baseline")
        sampler = ClipSampler(net, LatentCodec(vae, decode_batch=decode_batch), settings, placement=placement)
        for clip, _ in enumerate(sampler.run(inputs)):
            phases[f"after clip {clip}"] = memory.current / GIB
    return Estimate(mode, size, str(next(net.parameters()).dtype).removeprefix("torch."), decode_batch,
                    memory.peak / GIB, memory.resident / GIB, phases, memory.to_host, memory.to_device)


def denoiser_step_peak(net, size: int = 512, frames: int = 16) -> int:
    """Bytes of activations one guided denoiser step adds at its peak (weights and the clip's
    conditioning excluded): what ComfyUI must keep free beside the loaded networks."""
    from hallo_pipeline.config import RegionWeights
    from hallo_pipeline.hallo.models import RegionMasks
    from hallo_pipeline.hallo.sampling.guided_step import encode_identity, guided_denoise_step, reference_layers

    lat = size // 8
    dtype = next(net.parameters()).dtype
    ap = net.config.audioproj
    with torch.no_grad(), FlashAttentionFootprint():
        levels = len(net.config.unet.block_out_channels)
        masks = [RegionMasks(*(torch.rand((lat >> i) ** 2) for _ in range(3))) for i in range(levels)]
        identity = encode_identity(net, torch.randn(1, 512), torch.rand(1, 3, size, size), masks)
        audio = net.audioproj(torch.randn(1, frames, ap.window, ap.layers, ap.channels, device=META, dtype=dtype))
        reference = reference_layers(net, torch.randn(3, 4, lat, lat, device=META), identity.face_tokens, frames)
        latents = torch.randn(1, 4, frames, lat, lat, device=META)
        memory = DeviceMemoryModel()
        with memory:
            guided_denoise_step(net, latents, 999, identity, audio, reference, 3.5, RegionWeights())
    return memory.peak


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "# Estimated peak GPU memory (full size, no GPU needed)", "", f"`{command}`", "",
        "Allocator peak (what `torch.cuda.max_memory_allocated` reports), from the real sampler on the `meta` "
        "device; the CUDA context and library workspaces come on top. How: `benchmarks/memory_estimate.py`.", "",
        "| mode | size | dtype | VAE decode batch | peak GiB | weights on the GPU at the end, GiB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['mode']} | {r['size']} | {r['dtype']} | {r['decode_batch']} | {r['peak_gib']:.2f} | "
              f"{r['weights_resident_gib']:.2f} |" for r in results]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import shlex
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--decode-batch", default="1,4", help="VAE decode batch sizes to try (comma-separated; "
                        "the baseline always decodes one frame at a time, as the release does)")
    parser.add_argument("--fp8", action="store_true", help="the UNets' weights stored in fp8 (`--fp8`), upcast per "
                        "layer to --dtype")
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    net, vae, audio_model = build_meta_models(dtype=dtype)
    if args.fp8:
        from hallo_pipeline.hallo.memory import store_fp8

        store_fp8(net)  # on `meta` too: each layer's upcast temporary is counted like any other tensor
    results = []
    for mode in args.modes.split(","):
        for batch in [1] if mode == "baseline" else map(int, args.decode_batch.split(",")):
            est = estimate_generation(net, vae, audio_model, mode, args.size, batch)
            results.append(est.as_dict())
            print(f"{mode:9s} {args.size}px {args.dtype} decode batch {batch:2d}: peak {est.peak_gib:.2f} GiB "
                  f"(weights on the GPU at the end {est.weights_resident_gib:.2f} GiB)")
    if args.out:
        command = " ".join(["python -m benchmarks.memory_estimate",
                            *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        args.out.with_suffix(".json").write_text(json.dumps({"command": command, "estimates": results}, indent=1))
        args.out.with_suffix(".md").write_text(markdown(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
