"""Ways to hold the main DiT in less GPU memory (issue #13): fp8 weight storage and layers streamed from the host.

    store_fp8(nets.main)                          # its big matrices in float8_e4m3fn, upcast per layer (../fp8.py)
    stream_from_host(nets.main, blocks=12)        # 12 of its layers wait on the host, copied in for their forward

Both act on a built (and loaded) main DiT in place and compose: a streamed layer's host copy holds its fp8 weights.
Neither changes what a `Placement` sees as the model: `module.to(device)` moves the fp8 tensors as they are, and
leaves a streamed layer's host copy where it is (its module holds only empty stand-ins).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .. import fp8


def fp8_targets(main: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, Linear) of every matrix `store_fp8` converts: all Linears of the main DiT's transformer
    layers (self-attention, face/audio cross-attention, MLP) and of its per-layer AdaLN projections, 98 % of its
    weight bytes. The embeddings, the time MLP, the head and the face/audio projections stay in the working dtype:
    they are small, and they sit at the ends of the network where nothing averages their rounding out."""
    roots = [main.transformer.layers, main.mixins.adaln_layer.adaLN_modulations]
    return [target for root in roots for target in fp8.layers_of(root)]


def store_fp8(main: nn.Module) -> nn.Module:
    """Convert the main DiT's layer matrices (`fp8_targets`) to `fp8.Fp8Linear`, in place, where they lie."""
    fp8.store_fp8(fp8_targets(main))
    return main


# ----------------------------------------------------------------------------------------------------------------
# layers streamed from the host
# ----------------------------------------------------------------------------------------------------------------
class HostCopy:
    """The tensors of one module kept on the host (pinned when CUDA is there, so the copy-in is asynchronous); the
    module itself holds empty stand-ins, so moving it moves nothing. `resident(device)` puts the real tensors in
    for a block and takes them out after."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.tensors: dict[str, torch.Tensor] = {}
        pin = torch.cuda.is_available()
        for name, tensor in self._slots():
            if tensor.is_meta:  # the memory estimate: the "host" copy stays shapes only
                self.tensors[name] = tensor.detach()
                continue
            host = tensor.detach().to("cpu")
            self.tensors[name] = host.pin_memory() if pin else host
        self._empty()

    def _slots(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from self.module.named_parameters()
        yield from self.module.named_buffers()

    def _empty(self) -> None:
        for name, tensor in self._slots():
            tensor.data = torch.empty(0, dtype=self.tensors[name].dtype, device=tensor.device)

    @contextlib.contextmanager
    def resident(self, device: torch.device) -> Iterator[None]:
        slots = dict(self._slots())
        for name, host in self.tensors.items():
            # On meta a real copy is made even to meta, so the estimate counts the layer's buffer as a GPU would.
            slots[name].data = host.to(device, non_blocking=True, copy=host.is_meta)
        try:
            yield
        finally:
            self._empty()


def _host_copy(module: nn.Module) -> HostCopy | None:
    return getattr(module, "_hallo_host_copy", None)


@contextlib.contextmanager
def resident(module: nn.Module, device: torch.device) -> Iterator[None]:
    """`module`'s weights on `device` for the block when it is streamed from the host; otherwise nothing to do."""
    copy = _host_copy(module)
    if copy is None:
        yield
        return
    with copy.resident(device):
        yield


def _first_tensor(args) -> torch.Tensor:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    raise TypeError("a streamed layer is called with no tensor argument: it cannot tell where to compute")


def _stream(module: nn.Module) -> None:
    copy = HostCopy(module)
    module._hallo_host_copy = copy  # a plain attribute: `module.to()` and state_dict() do not see it
    active: list[contextlib.AbstractContextManager] = []

    def before(mod, args):
        while active:  # a forward that raised (e.g. out of memory) never reached `after`: drop its copy first
            active.pop().__exit__(None, None, None)
        ctx = copy.resident(_first_tensor(args).device)
        ctx.__enter__()
        active.append(ctx)

    def after(mod, args, output):
        active.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


def streamed_modules(main: nn.Module, blocks: int) -> list[nn.Module]:
    """The modules of the last `blocks` layers of the main DiT: each transformer layer and its AdaLN projection
    (the per-head q/k norms are a few hundred bytes and stay). The last layers: the resident ones run first, which
    leaves room for a prefetch of the first streamed layer on a side stream (not done yet: each copy waits for
    its layer's forward)."""
    layers = main.transformer.layers
    n = len(layers)
    if not 0 <= blocks <= n:
        raise ValueError(f"blocks must be 0..{n}, got {blocks}")
    adaln = main.mixins.adaln_layer.adaLN_modulations
    return [m for i in range(n - blocks, n) for m in (layers[i], adaln[i])]


def stream_from_host(main: nn.Module, blocks: int) -> nn.Module:
    """Keep `blocks` of the main DiT's layers on the host, each copied to the device of its input for its own
    forward and dropped after (in place; call after loading and after `store_fp8`)."""
    for module in streamed_modules(main, blocks):
        _stream(module)
    return main
