"""Project-level rules: the library boundary, the CI command, the dependency lists."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}


def test_library_never_imports_comfyui() -> None:
    offenders = []
    for path in (REPO / "hallo_pipeline").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in COMFY_MODULES]
    assert offenders == []


def test_importing_the_library_is_cheap() -> None:
    code = (
        "import sys, hallo_pipeline, hallo_pipeline.config, hallo_pipeline.errors, hallo_pipeline.families;"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'mediapipe', 'insightface', 'cv2') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme)
    assert match, "README.md must show the test command in a code block after <!-- test-command -->"
    command = match.group(1).strip()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_requirements_never_list_torch() -> None:
    reqs = (REPO / "requirements.txt").read_text().splitlines()
    names = {re.split(r"[<>=!~\[; ]", r.strip())[0].lower() for r in reqs if r.strip() and not r.startswith("#")}
    assert not names & {"torch", "torchvision", "torchaudio"}
    pyproject = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    listed = {re.split(r"[<>=!~\[; ]", d.strip().strip('",'))[0].lower() for d in deps.split("\n")
              if d.strip().startswith('"')}
    assert listed == names, "pyproject dependencies must mirror requirements.txt"
