"""Bad command-line input: a named error with the fix, before any weights are loaded."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hallo_pipeline.cli import main
from hallo_pipeline.hallo.pipeline import HalloPipeline
from tests.media import write_wav


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a check that should come first lets the run reach the weights."""

    def load(*args, **kwargs):
        raise AssertionError("the weights were loaded before the bad input was reported")

    monkeypatch.setattr(HalloPipeline, "load", load)


@pytest.fixture
def files(tmp_path, portrait_path) -> dict[str, Path]:
    audio = write_wav(tmp_path / "speech.wav", seconds=0.3)
    image = tmp_path / "face.png"
    shutil.copy(portrait_path, image)
    return {"image": image, "audio": audio, "output": tmp_path / "out.mp4"}


def _animate(files, models, *extra: str) -> list[str]:
    return ["animate", "--image", str(files["image"]), "--audio", str(files["audio"]), "--output",
            str(files["output"]), "--models", str(models), "--size", "128", "--steps", "1", *extra]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--clip-length", "1", r"argument --clip-length: 1 is out of range: use 2 to 1000"),
        ("--clip-length", "0", r"argument --clip-length: 0 is out of range"),
        ("--seed", "18446744073709551616",
         r"argument --seed: 18446744073709551616 is out of range: use 0 to 18446744073709551615"),
        ("--seed", "-1", r"argument --seed: -1 is out of range"),
        ("--cfg", "nan", r"argument --cfg: must be a finite number from 0 to 20, got nan"),
        ("--cfg", "inf", r"argument --cfg: must be a finite number"),
        ("--pose-weight", "nan", r"argument --pose-weight: must be a finite number"),
        ("--lip-weight", "1e30", r"argument --lip-weight: 1e\+30 is out of range: use 0 to 5"),
        ("--size", "0", r"argument --size: 0 is out of range: use 64 to 1024"),
        ("--steps", "1001", r"argument --steps: 1001 is out of range: use 1 to 1000"),
        ("--steps", "2.5", r"argument --steps: '2.5' is not a whole number"),
        ("--face-expand-ratio", "nan", r"argument --face-expand-ratio: must be a finite number"),
        ("--framing", "square", r"argument --framing: invalid choice: 'square' \(choose from '?crop'?, '?stretch'?\)"),
        ("--crop-scale", "0.9", r"argument --crop-scale: 0.9 is out of range: use 1 to 6"),
        ("--feather", "-0.1", r"argument --feather: -0.1 is out of range: use 0 to 0.5"),
        ("--max-side", "-5", r"argument --max-side: -5 is out of range: use 0 to 65536"),
        ("--max-side", "1e3", r"argument --max-side: '1e3' is not a whole number"),
    ],
)
def test_out_of_range_options_stop_at_parsing(option, value, message, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["animate", "--image", "x.png", "--audio", "x.wav", "--output", "o.mp4", option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "junk"], "error: device 'junk' is unknown; use auto, cpu, cuda or cuda:N"),
        (["--device", "mps"], "error: device 'mps' was asked for but this PyTorch build or Mac has no MPS"),
        (["--device", "cuda:x"], "error: device 'cuda:x' is unknown"),
        (["--clip-length", "40"], "error: clip_length 40 is too long for these weights: their motion modules hold "
                                  "positions for 32 frames, 2 of which are the motion frames; use at most 30"),
        (["--clip-length", "100"], "use at most 30"),
        (["--size", "100"], "error: image_size 100 cannot be used: the masks need sizes divisible by 64"),
        (["--max-side", "8"], "error: max_side 8 is too small: use 0 (no cap) or at least 16"),
        (["--offload-blocks", "4", "--fp8"], "error: offload_blocks: Hallo3 options, but the folder gives Hallo "
                                             "weights"),
        (["--tiled-decode", "--offload-blocks", "1"], "error: offload_blocks, tiled_decode: Hallo3 options"),
        (["--framing", "stretch", "--max-side", "640"],
         "error: max_side caps the photo the frames are pasted back into; with framing='stretch' the video is the "
         "model's square frames"),
    ],
)
def test_bad_options_are_reported_before_loading(extra, message, files, tiny_model_folder, no_loading, capsys) -> None:
    import torch

    if extra[:2] == ["--device", "mps"] and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert main(_animate(files, tiny_model_folder, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not files["output"].exists()


def test_missing_inputs_are_reported_before_loading(files, tiny_model_folder, no_loading, capsys) -> None:
    files["audio"].unlink()
    assert main(_animate(files, tiny_model_folder)) == 2
    assert f"error: audio '{files['audio']}' does not exist" in capsys.readouterr().err
    files["image"].unlink()
    assert main(_animate(files, tiny_model_folder)) == 2
    assert f"error: image file '{files['image']}' does not exist" in capsys.readouterr().err


def test_a_missing_model_part_is_reported_before_loading(files, tiny_model_folder, tmp_path, no_loading,
                                                         capsys) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for part in ("hallo", "sd-vae-ft-mse", "face_analysis"):  # no wav2vec/
        (models / part).symlink_to(tiny_model_folder / part)
    assert main(_animate(files, models)) == 2
    err = capsys.readouterr().err
    assert "is incomplete; missing:" in err and "wav2vec2-base-960h" in err


def test_the_weights_in_use_are_named_and_a_family_switch_is_said(files, tiny_model_folder, tmp_path, monkeypatch,
                                                                  capsys) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for part in ("hallo2", "sd-vae-ft-mse", "wav2vec", "face_analysis"):  # no hallo/
        (models / part).symlink_to(tiny_model_folder / part)
    import hallo_pipeline.hallo.checkpoint

    seen = {}

    def load_net(path, **kwargs):
        seen["net"] = path
        raise SystemExit(0)  # stop once the choice was said and the net is about to be read

    monkeypatch.setattr(hallo_pipeline.hallo.checkpoint, "load_net", load_net)
    with pytest.raises(SystemExit):
        main(_animate(files, models))
    assert seen["net"] == models / "hallo2" / "net.pth"
    err = capsys.readouterr().err
    assert "loading Hallo2 weights" in err and "no hallo/net.pth in the folder, so the Hallo2 weights" in err


def test_damaged_weights_are_called_damaged(files, tiny_model_folder, tmp_path, no_loading, capsys) -> None:
    models = tmp_path / "models"
    (models / "hallo").mkdir(parents=True)
    for part in ("sd-vae-ft-mse", "wav2vec", "face_analysis"):
        (models / part).symlink_to(tiny_model_folder / part)
    for content in (np.random.default_rng(0).bytes(4096), b"this is a text file, not weights\n" * 20):
        (models / "hallo" / "net.pth").write_bytes(content)
        assert main(_animate(files, models)) == 2
        err = capsys.readouterr().err
        assert "is damaged or truncated, or not a weights file at all" in err and "download it again" in err
        assert "Traceback" not in err


def test_make_tiny_models_never_overwrites_model_files(tmp_path, capsys, monkeypatch) -> None:
    import hallo_pipeline.hallo.tiny_models as tiny

    written = []
    monkeypatch.setattr(tiny, "write_tiny_net", lambda folder, seed: written.append(folder))
    real = tmp_path / "models" / "hallo"
    (real / "hallo").mkdir(parents=True)
    (real / "hallo" / "net.pth").write_bytes(b"the user's real weights")
    assert main(["make-tiny-models", str(real)]) == 2
    err = capsys.readouterr().err
    assert "already holds hallo/" in err and "--force" in err and "hallo-tiny" in err
    assert written == [] and (real / "hallo" / "net.pth").read_bytes() == b"the user's real weights"

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["make-tiny-models", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err

    def read_only(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "touch", read_only)
    assert main(["make-tiny-models", str(tmp_path / "ro")]) == 2
    assert "cannot write into" in capsys.readouterr().err and written == []


def test_a_huge_photo_is_refused_before_loading(files, tiny_model_folder, no_loading, capsys) -> None:
    """A 15000x15000 PNG (its header says so; no pixels are needed to refuse it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 15000, 15000, 8, 2, 0, 0, 0)
    files["image"].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    assert main(_animate(files, tiny_model_folder)) == 2
    err = capsys.readouterr().err
    assert "has 225.0 megapixels, more than the limit of 179.0 megapixels; scale it down" in err
    assert "Traceback" not in err


def test_our_own_warnings_still_reach_the_user(tmp_path, capsys) -> None:
    """The command line hides other libraries' warnings, not ours (silent audio: the mouth will not move)."""
    import warnings

    from hallo_pipeline.audio.io import warn_if_silent
    from hallo_pipeline.cli import _setup_output

    with warnings.catch_warnings():
        _setup_output(verbose=False)
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
        assert warn_if_silent(np.zeros(16000, dtype=np.float32))
    err = capsys.readouterr().err
    # Ours as a plain line for the user, without the source line that raised it; the library's hidden.
    assert err.startswith("warning: audio is silent (peak") and err.count("\n") == 1
    assert "deprecation" not in err and ".py:" not in err
