"""What the Comfy registry gets: the archive `comfy node pack` builds, and the metadata it reads.

`comfy node pack` (and `comfy node publish`, which uploads the same archive) takes the git-tracked
files, drops those that `.comfyignore` matches (gitignore patterns, one per line, `#` comments), and
adds any `[tool.comfy] includes`. Here git's own gitignore matcher applies the patterns, so the test
needs a git checkout (CI runs in one) but no comfy-cli and no network.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.nodes.comfy_env import STANDIN
from tests.nodes.test_package import NODE_IDS

REPO = Path(__file__).resolve().parents[1]
REPOSITORY_URL = "https://github.com/hallo-node-pack/hallo-talking-head"

# What the pack needs once installed: ComfyUI's entry point, the nodes, the library (with the tiny
# model makers `make-tiny-models` runs), the help pages, the example workflows, and the metadata.
RUNTIME_FILES = ["__init__.py", "requirements.txt", "pyproject.toml", "README.md", "LICENSE", "web/icon.svg"]
RUNTIME_FOLDERS = ["nodes", "hallo_pipeline", "hallo_pipeline/testing", "web/docs", "workflows"]
DEVELOPMENT_FOLDERS = ["tests", "benchmarks", ".ci", ".github"]

# The registry's own classifier strings (docs.comfy.org/registry/specifications; comfy-cli checks them
# before publishing and drops the OS or accelerator list when one entry is outside these).
REGISTRY_OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
REGISTRY_ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                         "GPU :: Apple Metal"}


def _git_paths(*args: str) -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args, "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the registry archive is built from git-tracked files")
    return [p for p in out.decode().split("\0") if p]


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def archive_files() -> list[str]:
    """The archive's file list, as `comfy node pack` makes it."""
    assert "includes" not in _pyproject()["tool"]["comfy"], "[tool.comfy] includes would add files: model them here"
    tracked = _git_paths("ls-files")
    left_out = set(_git_paths("ls-files", "--cached", "--ignored", "--exclude-from=.comfyignore"))
    return sorted(p for p in tracked if p not in left_out)


def build_archive(target: Path) -> list[str]:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in archive_files():
            archive.write(REPO / name, name)
    with zipfile.ZipFile(target) as archive:
        return archive.namelist()


def test_comfyignore_reads_the_same_to_git_and_to_comfy_cli() -> None:
    """comfy-cli strips each line and skips `#` lines; git does neither for leading blanks. Lines
    written plainly (and no `!` re-includes, which act differently under a left-out folder) mean the
    same to both."""
    for line in (REPO / ".comfyignore").read_text().splitlines():
        assert line == line.strip(), repr(line)
        assert not line.startswith("!"), line


def test_archive_keeps_what_the_pack_runs_on_and_leaves_out_development_files(tmp_path) -> None:
    names = build_archive(tmp_path / "node.zip")
    tracked = _git_paths("ls-files")
    for name in RUNTIME_FILES:
        assert name in names, name
    for folder in RUNTIME_FOLDERS:
        in_repo = [p for p in tracked if p.startswith(folder + "/")]
        assert in_repo and all(p in names for p in in_repo), folder
    assert [f"web/docs/{node_id}.md" for node_id in NODE_IDS if f"web/docs/{node_id}.md" not in names] == []
    assert [n for n in names if n.split("/")[0] in DEVELOPMENT_FOLDERS] == []
    assert [n for n in names if "__pycache__" in n.split("/") or n.endswith((".pyc", ".pyo"))] == []
    # Everything at the top is accounted for: a new top-level file or folder is a decision to make.
    top = {n.split("/")[0] for n in names}
    assert top == {"__init__.py", "requirements.txt", "pyproject.toml", "README.md", "LICENSE", "nodes",
                   "hallo_pipeline", "web", "workflows"}


def test_shipped_code_never_imports_development_code() -> None:
    """tests/ and benchmarks/ are not in the archive; nothing in it may import them, even lazily."""
    offenders = []
    for name in (n for n in archive_files() if n.endswith(".py")):
        for node in ast.walk(ast.parse((REPO / name).read_text(), filename=name)):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            offenders += [f"{name}: {m}" for m in modules if m.split(".")[0] in ("tests", "benchmarks")]
    assert offenders == []


def test_the_unpacked_archive_loads_as_a_custom_node(tmp_path) -> None:
    """Unzipped into custom_nodes/ (what ComfyUI-Manager does with a registry download), the pack
    registers its seven nodes from its own files alone."""
    build_archive(tmp_path / "node.zip")
    folder = tmp_path / "custom_nodes" / "hallo-talking-head"
    with zipfile.ZipFile(tmp_path / "node.zip") as archive:
        archive.extractall(folder)
    code = (
        "import asyncio, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "import folder_paths;"  # ComfyUI imports it before any custom node
        "from pathlib import Path; from tests.nodes.comfy_env import load_pack;"
        "pack = load_pack(Path(sys.argv[3]));"
        "nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list());"
        "own = [m.__file__ for n, m in sys.modules.items() if n.startswith(pack.__name__ + '.')];"
        "assert own and all(f.startswith(sys.argv[3]) for f in own), own;"
        "print(','.join(cls.GET_SCHEMA().node_id for cls in nodes))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(STANDIN), str(REPO), str(folder)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",") == NODE_IDS


def test_pyproject_carries_what_the_registry_reads() -> None:
    project, comfy = _pyproject()["project"], _pyproject()["tool"]["comfy"]
    # name: the id of `comfy node install <name>`; letters, digits, - _ . ; no "ComfyUI" in it
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"] and project["license"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"].startswith("https://")
    assert re.fullmatch(r"(>=|==|<=|~=|>|<)?\d+\.\d+\.\d+", comfy["requires-comfyui"])
    for model in comfy.get("Models", []):
        assert model["location"].startswith("/") and model["model_url"].startswith("https://")

    classifiers = project["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(REGISTRY_OS_PREFIXES) for s in systems)
    assert accelerators and set(accelerators) <= REGISTRY_ACCELERATORS
    # `license` is an SPDX expression: setuptools >= 77 refuses a "License ::" classifier beside it.
    assert not [c for c in classifiers if c.startswith("License ::")]

    urls = project["urls"]  # the registry reads Homepage, Documentation, Repository, Issues
    assert urls["Repository"] == REPOSITORY_URL
    assert urls["Documentation"].startswith(REPOSITORY_URL) and urls["Issues"] == REPOSITORY_URL + "/issues"
    assert comfy["Icon"].startswith(REPOSITORY_URL.replace("github.com", "raw.githubusercontent.com") + "/main/")


def test_readme_says_how_to_install_from_the_registry() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"comfy node install {_pyproject()['project']['name']}" in readme
    assert "ComfyUI-Manager" in readme


def test_publish_workflow_publishes_when_pyproject_changes_on_main() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "publish.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers
    assert triggers["push"] == {"branches": ["main"], "paths": ["pyproject.toml"]}
    (job,) = workflow["jobs"].values()
    steps = {step["uses"].split("@")[0]: step for step in job["steps"]}
    assert list(steps) == ["actions/checkout", "Comfy-Org/publish-node-action"]
    token = steps["Comfy-Org/publish-node-action"]["with"]["personal_access_token"]
    assert token == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"
