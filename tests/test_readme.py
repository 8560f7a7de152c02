"""The README's examples run as written, on the tiny model folder, in a folder laid out as they assume.

A block marked `<!-- example -->` in README.md is run: Python blocks with the Python that runs the
tests, bash blocks line by line with `python` meaning that Python. They find `face.png`,
`speech.wav` and the tiny model folder (`models/hallo-tiny`) where the README says they are;
a line that downloads from Hugging Face is the only one skipped (no network here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.media import write_wav

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- example -->\s*```(\w+)\n(.*?)```", re.S)

pytestmark = pytest.mark.slow


def examples() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_the_readme_has_examples_to_run() -> None:
    languages = [language for language, _ in examples()]
    assert "python" in languages and "bash" in languages


@pytest.fixture
def user_folder(tmp_path, portrait_path) -> Path:
    """A user's folder: their portrait and speech, and `models/hallo-tiny` (a copy: the examples may write there)."""
    shutil.copy(portrait_path, tmp_path / "face.png")
    write_wav(tmp_path / "speech.wav", 1.5)  # 38 frames: three clips of 16, so the segments example splits
    (tmp_path / "bin").mkdir()
    # A script, not a link: a linked venv Python would not find its venv (pyvenv.cfg is looked up beside it).
    python = tmp_path / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return tmp_path


def _run(command: list[str], folder: Path) -> str:
    """Run as the user would; return what the user sees on stderr."""
    env = {**os.environ, "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stderr


@pytest.mark.parametrize("index", range(len(examples())))
def test_example_runs_as_written(index: int, user_folder: Path, tiny_model_folder: Path) -> None:
    language, code = examples()[index]
    if language == "python":
        shutil.copytree(tiny_model_folder, user_folder / "models" / "hallo-tiny")  # what the bash example makes
        _run([sys.executable, "-c", code], user_folder)
        return
    assert language == "bash", f"README example {index} is {language}; only python and bash examples are run"
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#") and " download " not in line:
            seen = _run(["bash", "-c", line], user_folder)
            # the libraries' own chatter (mediapipe/TFLite log lines, Python warnings) stays out of sight
            for noise in ("W0000", "I0000", "XNNPACK", "Warning:"):
                assert noise not in seen, f"{line!r} printed {noise!r}:\n{seen}"
    assert any(user_folder.glob("*.mp4")) or "animate" not in code
