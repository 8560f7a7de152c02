"""`make-tiny-models --hallo3`: the folder has the release's layout, is found and complete, and loads end to end."""

from __future__ import annotations

import json

import pytest
import torch

from hallo_pipeline import families
from hallo_pipeline.errors import CheckpointError, InputError
from hallo_pipeline.hallo3.family import FAMILY
from hallo_pipeline.hallo3.loading import load_hallo3_models, read_model_config
from hallo_pipeline.hallo3.model import checkpoint_shapes


def load_weights_only(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _needs_writers() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("sentencepiece")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    _needs_writers()
    from hallo_pipeline.hallo3.tiny_models import make_tiny_models_hallo3

    return make_tiny_models_hallo3(tmp_path_factory.mktemp("h3") / "hallo3-tiny", seed=3, face_landmarker=False)


@pytest.fixture(scope="module")
def models(folder):
    return load_hallo3_models(families.locate(folder, "hallo3"))


def test_the_folder_is_found_and_complete(folder) -> None:
    for variant in ("auto", "hallo3"):
        files = families.locate(folder, variant)
        assert files.variant == "hallo3" and files.weights == folder / "hallo3" / "1" / "mp_rank_00_model_states.pt"
    files.require(*FAMILY.required_parts(separate_vocals=True))
    assert (folder / "hallo3" / "latest").read_text() == "1"
    assert families.locate(folder).note  # auto tried Hallo first and says so


def test_the_weights_are_the_releases_layout_and_every_tensor_loads(folder, models) -> None:
    config, _ = read_model_config(folder / "hallo3" / "1" / "mp_rank_00_model_states.pt")
    saved = load_weights_only(folder / "hallo3" / "1" / "mp_rank_00_model_states.pt")
    assert set(saved) == {"module"}
    module = saved["module"]
    assert {k: tuple(v.shape) for k, v in module.items()} == checkpoint_shapes(config)
    assert {v.dtype for v in module.values()} == {torch.bfloat16}
    loaded = models.networks.state_dict()
    key = "model.diffusion_model.transformer.layers.0.face_attn.query.weight"
    assert torch.equal(loaded["main." + key.split("model.diffusion_model.")[1]], module[key].float())
    vae = load_weights_only(folder / "cogvideox-5b-i2v-sat" / "vae" / "3d-vae.pt")
    assert set(vae) == {"state_dict"} and all(k.startswith(("encoder.", "decoder.")) for k in vae["state_dict"])
    assert any(".down.0.block.0." in k for k in vae["state_dict"])  # SAT names, not diffusers'


def test_everything_runs_from_the_files(models) -> None:
    config = models.config
    dit, seg, c = config.dit, config.segment, config.audio_proj
    text = models.text_encoder.encode("A boy reading")
    assert text.shape == (1, dit.text_length, dit.text_hidden_size) and torch.isfinite(text).all()

    g = torch.Generator().manual_seed(0)
    height, width = seg.image_size
    frames = torch.rand(1, 3, 3, height, width, generator=g) * 2 - 1
    noise_shape = models.vae.latent_shape(frames.shape)
    concat = models.vae.encode(frames, torch.randn(noise_shape, generator=g))
    assert concat.shape == (1, seg.latent_channels, 1, dit.latent_height, dit.latent_width)  # 3 frames -> 1
    decoded = models.vae.decode(concat)
    assert decoded.shape == (1, 3, 1, height, width) and torch.isfinite(decoded).all()

    def frames_first(x):
        return x.permute(0, 2, 1, 3, 4)

    frames_n = dit.latent_frames
    first = frames_first(concat)  # the concat latent: the encoded frame, then zero frames (SPEC §3)
    concat_seq = torch.cat([first, first.new_zeros(1, frames_n - 1, *first.shape[2:])], dim=1)
    bank, _ = models.networks.reference.reference_bank(frames_first(concat))
    main = models.networks.main
    v = main(
        latent=torch.randn(1, frames_n, dit.out_channels, dit.latent_height, dit.latent_width, generator=g),
        concat=concat_seq,
        timestep=torch.tensor([500.0]),
        text=text,
        face_tokens=main.project_face(torch.randn(1, config.face_proj.clip_embeddings_dim, generator=g)),
        audio_tokens=main.project_audio(torch.randn(1, dit.num_frames, c.seq_len, c.blocks, c.channels, generator=g)),
        reference=main.reference_kv(bank),
    )
    assert v.shape == (1, frames_n, dit.out_channels, dit.latent_height, dit.latent_width)
    assert torch.isfinite(v).all() and v.abs().max() > 0


def test_a_model_folder_is_never_overwritten(tmp_path) -> None:
    from hallo_pipeline.hallo3.tiny_models import make_tiny_models_hallo3

    real = tmp_path / "models"
    (real / "hallo3").mkdir(parents=True)
    (real / "hallo3" / "latest").write_text("1")
    with pytest.raises(InputError, match=r"already holds hallo3/.*--force"):
        make_tiny_models_hallo3(real, face_landmarker=False)
    assert sorted(p.name for p in real.iterdir()) == ["hallo3"]


def test_the_config_beside_the_weights_gives_the_sizes(tmp_path) -> None:
    weights = tmp_path / "mp_rank_00_model_states.pt"
    released, vae = read_model_config(weights)
    assert released.dit.hidden_size == 3072 and vae.ch == 128  # no config.json: the release's sizes
    (tmp_path / "config.json").write_text(json.dumps({"dit": {"num_layers": 1, "hiden_size": 8}}))
    with pytest.raises(CheckpointError, match=r"config\.json.*hiden_size"):
        read_model_config(weights)
    (tmp_path / "config.json").write_text("[1, 2")
    with pytest.raises(CheckpointError, match=r"cannot be read"):
        read_model_config(weights)


def test_the_tiny_files_have_the_fixture_sets_names_and_shapes(hallo3_parity_path, tmp_path) -> None:
    """Written with a fixture set's tiny config, our files hold exactly the tensors the release's files of that
    config hold: the layout is the release's, not merely one our loader reads."""
    _needs_writers()
    from hallo_pipeline.hallo3.tiny_models import make_tiny_models_hallo3

    config = json.loads((hallo3_parity_path / "tiny_config.json").read_text())
    ours = make_tiny_models_hallo3(tmp_path / "m", face_landmarker=False, config=config)
    theirs = hallo3_parity_path / "models"
    for path, entry in (("hallo3/1/mp_rank_00_model_states.pt", "module"),
                        ("cogvideox-5b-i2v-sat/vae/3d-vae.pt", "state_dict")):
        a = load_weights_only(ours / path)[entry]
        b = {k: v for k, v in load_weights_only(theirs / path)[entry].items() if not k.startswith("loss.")}
        assert {k: tuple(v.shape) for k, v in a.items()} == {k: tuple(v.shape) for k, v in b.items()}, path
    assert (ours / "hallo3" / "latest").read_text().strip() == (theirs / "hallo3" / "latest").read_text().strip()
    t5 = [json.loads((root / "t5-v1_1-xxl" / "config.json").read_text()) for root in (ours, theirs)]
    assert t5[0]["d_model"] == t5[1]["d_model"]


def test_the_command_writes_a_hallo3_folder(tmp_path, capsys) -> None:
    _needs_writers()
    from hallo_pipeline.cli import main

    target = tmp_path / "hallo3-tiny"
    assert main(["make-tiny-models", "--hallo3", str(target), "--no-face-landmarker", "--seed", "1"]) == 0
    assert families.locate(target, "auto").variant == "hallo3"
    assert not (target / "hallo").exists()
    assert main(["make-tiny-models", "--hallo3", str(target), "--no-face-landmarker"]) == 2
    assert "already holds" in capsys.readouterr().err
    assert main(["make-tiny-models", "--hallo3", str(target), "--no-face-landmarker", "--force"]) == 0


def test_a_missing_part_says_how_to_fetch_it(folder, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder / "hallo3", copy / "hallo3")
    files = families.locate(copy, "hallo3")
    with pytest.raises(CheckpointError, match=r"3d-vae\.pt.*t5-v1_1-xxl.*download .*--hallo3"):
        load_hallo3_models(files)
