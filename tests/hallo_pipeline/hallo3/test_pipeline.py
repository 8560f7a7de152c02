"""`Hallo3Generator` and its placement: which network computes when, one at a time, and the options that change
only memory (no offload device, layers streamed from the host) leave the frames as they were."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from hallo_pipeline.devices import Placement
from hallo_pipeline.hallo3.pipeline import Hallo3Generator, MemoryOptions, default_placement
from tests.hallo_pipeline.hallo3.test_segments import SETTINGS, StandInVAE, _conditions
from tests.hallo_pipeline.hallo3.tiny import TINY, random_networks

FRAMES = SETTINGS.stride + 3  # two segments


class RecordingPlacement(Placement):
    """A placement with an offload device that keeps the order of `use` blocks and what is in use now."""

    def __init__(self, names: dict[int, str]):
        super().__init__(torch.device("cpu"), offload=torch.device("cpu"))
        self.names, self.blocks, self.active, self.homed = names, [], [], []
        self.hints: dict[str, int] = {}  # network -> the largest `memory` hint its blocks gave

    def home(self, module):
        self.homed.append(self.names[id(module)])
        return super().home(module)

    @contextlib.contextmanager
    def use(self, *modules, memory=0):
        names = [self.names[id(m)] for m in modules]
        for name in names:
            self.hints[name] = max(self.hints.get(name, 0), memory)
        self.blocks.append(names)
        self.active.append(names)
        try:
            with super().use(*modules):
                yield
        finally:
            self.active.pop()

    def in_use(self) -> set[str]:
        return {n for names in self.active for n in names}


class StandInT5:
    def __init__(self, seen: list):
        self.model, self.seen = nn.Linear(1, 1), seen

    def encode(self, prompt: str) -> torch.Tensor:
        self.seen.append(prompt)
        g = torch.Generator().manual_seed(len(prompt))
        return torch.randn(1, TINY.dit.text_length, TINY.dit.text_hidden_size, generator=g)


class ModuleVAE(StandInVAE):
    """The stand-in VAE with a module for the placement to move, and a check on every call."""

    def __init__(self, check):
        super().__init__()
        self.model, self.check = nn.Linear(1, 1), check

    def encode(self, frames, noise):
        self.check("vae")
        return super().encode(frames, noise)

    def decode(self, latents, output_device=None):
        self.check("vae")
        return super().decode(latents, output_device)


def _generator(placement_for=None, nets=None):
    """A generator over random tiny networks and stand-ins; `placement_for(names)` makes its placement."""
    nets = nets if nets is not None else random_networks()
    outside: list[str] = []
    holder = {}

    def check(name: str) -> None:
        placement = holder.get("placement")
        if isinstance(placement, RecordingPlacement) and name not in placement.in_use():
            outside.append(name)

    vae, t5 = ModuleVAE(check), StandInT5([])
    names = {id(nets.main): "main", id(nets.reference): "reference", id(vae.model): "vae", id(t5.model): "t5"}
    placement = placement_for(names) if placement_for else None
    holder["placement"] = placement
    for name, net in (("main", nets.main), ("reference", nets.reference)):
        for module in net.modules():
            module.register_forward_pre_hook(lambda m, args, name=name: check(name))
    if placement is not None:
        for module in (t5.model, nets.reference, nets.main, vae.model):
            placement.home(module)
    generator = Hallo3Generator(nets, vae, t5, None, TINY, placement=placement)
    return generator, t5, outside


def _video(generator, seed: int = 5) -> list:
    return list(generator.generate(_conditions(FRAMES), seed, steps=SETTINGS.steps))


def test_each_network_computes_alone_in_its_phase() -> None:
    generator, t5, outside = _generator(RecordingPlacement)
    placement = generator.placement
    assert placement.homed == ["t5", "reference", "main", "vae"]
    text = generator.encode_prompt("A person talking")
    assert placement.blocks == [["t5"]] and t5.seen == ["A person talking"]
    segments = _video(generator)
    assert len(segments) == 2
    # Segment 0: its encodes, the reference DiT once for the bank, the main DiT (K/V + sampling), the decode;
    # segment 1: the same without the reference pass. Never two networks in one block, never nested.
    assert placement.blocks[1:] == [["vae"], ["reference"], ["main"], ["vae"], ["vae"], ["main"], ["vae"]]
    assert outside == [], f"computed outside their use(): {outside}"
    # Each phase tells a device-sharing placement what it needs beside the weights; the decode needs the most
    # (ComfyUI then offloads the main DiT for it), the reference pass the least.
    hints = placement.hints
    assert hints["vae"] > hints["main"] > hints["reference"] > 0
    assert text.device.type == "cpu"


def test_the_prompt_is_encoded_once() -> None:
    generator, t5, _ = _generator(RecordingPlacement)
    first = generator.encode_prompt("A")
    assert generator.encode_prompt("A") is first
    generator.encode_prompt("B")
    assert t5.seen == ["A", "B"] and generator.placement.blocks == [["t5"], ["t5"]]


def test_without_an_offload_device_nothing_moves_and_the_frames_are_the_same(monkeypatch) -> None:
    reference = _video(_generator(RecordingPlacement)[0])
    generator, _, _ = _generator()  # the default: Placement(where the main DiT is, no offload)
    assert generator.placement.offload is None and generator.placement.device.type == "cpu"
    moved = []
    monkeypatch.setattr(nn.Module, "to", lambda self, *a, **k: moved.append(type(self).__name__) or self)
    video = _video(generator)
    assert moved == []
    for ours, theirs in zip(video, reference, strict=True):
        assert torch.equal(ours.frames, theirs.frames) and torch.equal(ours.latent, theirs.latent)


def test_streamed_layers_and_an_offloading_placement_give_the_same_frames() -> None:
    expected = _video(_generator()[0])
    nets = random_networks()
    MemoryOptions(offload_blocks=TINY.dit.num_layers).apply(nets.main)
    generator, _, outside = _generator(RecordingPlacement, nets=nets)
    for ours, theirs in zip(_video(generator), expected, strict=True):
        assert torch.equal(ours.frames, theirs.frames)
    assert outside == []


def test_memory_options_are_checked() -> None:
    from hallo_pipeline.errors import InputError

    for bad in (-1, TINY.dit.num_layers + 1, 1.5, True):
        with pytest.raises(InputError, match="offload_blocks") as err:
            MemoryOptions(offload_blocks=bad).check(TINY.dit.num_layers)
        assert err.value.input == "offload_blocks"
    with pytest.raises(InputError) as err:
        MemoryOptions(fp8="yes").check(2)
    assert err.value.input == "fp8"


def test_on_a_gpu_every_network_waits_on_the_host() -> None:
    assert default_placement(torch.device("cuda")).offload == torch.device("cpu")
    assert default_placement(torch.device("cpu")).offload is None

