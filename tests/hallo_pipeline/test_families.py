"""The model-family seam: which family a folder holds, what "auto" picks and says, and that a registered
family reaches the command line's options."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from hallo_pipeline import families
from hallo_pipeline.errors import CheckpointError, InputError
from hallo_pipeline.model_folder import ModelFolder
from tests.conftest import REPO


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _hallo3(root: Path, suffix: str = ".pt") -> Path:
    _write(root / "hallo3" / "latest", b"1\n")
    return _write(root / "hallo3" / "1" / f"mp_rank_00_model_states{suffix}")


def test_each_family_and_variant_is_found(tmp_path) -> None:
    only_hallo2 = tmp_path / "hallo2_only"
    net = _write(only_hallo2 / "hallo2" / "net.pth")
    files = families.locate(only_hallo2)
    assert (files.variant, files.net) == ("hallo2", net)
    assert "no hallo/net.pth in the folder, so the Hallo2 weights" in files.describe()

    both = tmp_path / "both"
    _write(both / "hallo" / "net.safetensors")
    weights = _hallo3(both)
    assert families.locate(both).variant == "hallo" and families.locate(both).note == ""
    files = families.locate(both, "hallo3")
    assert (files.variant, files.weights, files.note) == ("hallo3", weights, "")
    assert families.family_of("hallo3").name == "Hallo3"


def test_auto_says_when_it_takes_another_family(tmp_path) -> None:
    _hallo3(tmp_path, ".pt")
    converted = _hallo3(tmp_path, ".safetensors")  # the converted copy is preferred
    files = families.locate(tmp_path)
    assert files.variant == "hallo3" and files.weights == converted
    assert files.describe() == (f"Hallo3 weights {converted} (no Hallo weights in the folder, so the Hallo3 "
                                "weights are used)")
    assert all(families.holds_weights(p) for p in (tmp_path,)) and not families.holds_weights(tmp_path / "hallo3")


def test_an_empty_folder_lists_what_every_family_looked_for(tmp_path) -> None:
    with pytest.raises(CheckpointError) as err:
        families.locate(tmp_path)
    text = str(err.value)
    assert text.startswith(f"no Hallo weights found in model folder {str(tmp_path)!r}")
    assert str(tmp_path / "hallo2" / "net.pth") in text and "python -m hallo_pipeline download" in text
    assert "nor Hallo3 weights:" in text and str(tmp_path / "hallo3" / "latest") in text
    with pytest.raises(CheckpointError, match="does not exist"):
        families.locate(tmp_path / "missing")


def test_an_unknown_variant_names_the_choices(tmp_path) -> None:
    with pytest.raises(InputError, match=r"variant 'hallo4' is unknown; use auto, hallo, hallo2 or hallo3") as err:
        families.locate(tmp_path, "hallo4")
    assert err.value.input == "variant"


def test_hallo3_checks_a_run_without_loading(tmp_path) -> None:
    _hallo3(tmp_path)
    files = families.locate(tmp_path)
    family = families.family_of(files.variant)
    assert family.text_prompt and not families.family_of("hallo").text_prompt
    settings = family.settings(files)
    assert (settings.steps, settings.guidance_scale, settings.seed) == (50, 3.5, 42)  # the release's
    assert family.settings(files, steps=3, guidance_scale=None).steps == 3  # None: the family's default
    with pytest.raises(InputError, match="steps 0 is out of range") as err:
        family.settings(files, steps=0)
    assert err.value.input == "steps"
    photo = _write(tmp_path / "face.png", (REPO / "tests" / "data" / "portrait.png").read_bytes())
    speech = _write(tmp_path / "speech.wav")
    with pytest.raises(CheckpointError, match=r"is incomplete; missing: .*3d-vae\.pt.*t5-v1_1-xxl.*"
                                              r"fudan-generative-ai/hallo3"):
        family.check_inputs(files, photo, speech, tmp_path / "out.mp4")
    # Anything passed as a placement must be one (the nodes pass ComfyUI's, the library's default is devices').
    with pytest.raises(InputError, match="is not a placement") as err:
        families.load_pipeline(tmp_path, device="cpu", placement=object())
    assert err.value.input == "placement"


@dataclasses.dataclass(frozen=True)
class _FakeFiles(ModelFolder):
    root: Path
    variant: str = "fake"
    note: str = ""

    def describe(self) -> str:
        return "Fake weights" + (f" ({self.note})" if self.note else "")


class _FakeFamily:
    name = "Fake"
    variants = {"fake": "fake/weights.bin"}
    modes = ("fake_loop",)
    flags = {"fake": "the fake family"}
    text_prompt = False
    default_prompt = ""
    half_precision = "fp16"

    def locate(self, root, variant="auto"):
        if not (root / "fake" / "weights.bin").is_file():
            raise CheckpointError("no fake weights")
        return _FakeFiles(root)


@pytest.fixture
def fake_family(monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", [*families.FAMILIES, _FakeFamily()])


def test_a_registered_family_is_offered_and_found(fake_family, tmp_path) -> None:
    from hallo_pipeline.cli import build_parser

    assert families.variant_options()[-1] == "fake" and families.mode_options()[-1] == "fake_loop"
    _write(tmp_path / "fake" / "weights.bin")
    files = families.locate(tmp_path)
    assert isinstance(files, _FakeFiles)
    assert files.describe() == "Fake weights (no Hallo or Hallo3 weights in the folder, so the Fake weights are used)"
    parser = build_parser()
    common = ["animate", "--image", "i.png", "--audio", "a.wav", "--output", "o.mp4"]
    assert parser.parse_args([*common, "--variant", "fake"]).variant == "fake"
    assert parser.parse_args([*common, "--fake"]).variant == "fake"
    assert parser.parse_args([*common, "--hallo2"]).variant == "hallo2"
    assert parser.parse_args(common).variant == "auto"


def test_variant_names_stay_inside_their_family_and_the_registry() -> None:
    """Adding a family touches its package and the registry: no other module spells a variant name."""
    names = {v for family in families.FAMILIES for v in family.variants} - {"hallo"}  # also the models folder's name
    owners = {REPO / "hallo_pipeline" / "hallo", REPO / "hallo_pipeline" / "hallo3"}
    offenders = []
    for path in [*(REPO / "hallo_pipeline").rglob("*.py"), *(REPO / "nodes").rglob("*.py")]:
        if path == REPO / "hallo_pipeline" / "families.py" or any(o in path.parents for o in owners):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert offenders == []


def test_the_public_entry_loads_the_family_the_folder_holds(tiny_model_folder) -> None:
    from hallo_pipeline.hallo.pipeline import HalloPipeline
    from hallo_pipeline.pipeline import HalloPipeline as Public
    from hallo_pipeline.pipeline import load_pipeline

    assert Public is HalloPipeline
    pipeline = load_pipeline(tiny_model_folder, device="cpu")
    assert isinstance(pipeline, HalloPipeline) and pipeline.variant == "hallo" and pipeline.files.note == ""
    assert load_pipeline(families.locate(tiny_model_folder, "hallo2"), device="cpu").resolve_mode() == "hallo2"
