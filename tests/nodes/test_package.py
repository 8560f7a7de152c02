"""The pack as ComfyUI sees it: how it registers, what it imports, where its models are found."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.nodes.comfy_env import REPO, STANDIN, comfy_env

NODE_IDS = ["HalloModelLoader", "HalloFaceMask", "HalloAudioEmbed", "HalloReferenceEncode", "HalloSampler",
            "HalloVideoStitch", "HalloPasteBack", "HalloSegmentPlan", "HalloSegmentJoin"]


def test_v3_comfyui_gets_the_nodes_from_the_entry_point(comfy) -> None:
    # Both ComfyUI versions use NODE_CLASS_MAPPINGS whenever it is not None, and only then the entry point.
    assert comfy.pack.NODE_CLASS_MAPPINGS is None
    nodes = comfy.nodes()
    assert list(nodes) == NODE_IDS
    io = sys.modules["comfy_api.latest._io"]
    assert all(issubclass(cls, io.ComfyNode) for cls in nodes.values())


def test_older_comfyui_gets_the_same_nodes_through_node_class_mappings(tmp_path) -> None:
    with comfy_env(tmp_path / "models") as v3:
        v3_info = {k: cls.GET_NODE_INFO_V1() for k, cls in v3.nodes().items()}
    with comfy_env(tmp_path / "models", v3=False) as v1:
        mappings = v1.pack.NODE_CLASS_MAPPINGS
        assert list(mappings) == NODE_IDS
        for node_id, cls in mappings.items():
            info = v3_info[node_id]
            types = cls.INPUT_TYPES()
            for section in ("required", "optional"):
                assert list(types.get(section, {})) == info["input_order"].get(section, []), node_id
                for name, spec in types.get(section, {}).items():
                    v3_type, v3_options = info["input"][section][name]
                    assert spec[0] == (v3_options["options"] if v3_type == "COMBO" else v3_type), (node_id, name)
                    # every setting the V1 spec carries (default, limits, tooltip, seed control) is the V3 one
                    assert spec[1] == {k: v3_options[k] for k in spec[1]}, (node_id, name)
                    assert "tooltip" in spec[1] and "default" in spec[1] or spec[0] not in ("INT", "FLOAT", "BOOLEAN")
            assert list(cls.RETURN_TYPES) == info["output"]
            assert list(cls.RETURN_NAMES) == info["output_name"]
            assert list(cls.OUTPUT_TOOLTIPS) == info["output_tooltips"]
            assert cls.CATEGORY == info["category"] and cls.DESCRIPTION == info["description"]
            assert v1.pack.NODE_DISPLAY_NAME_MAPPINGS[node_id] == info["display_name"]
            assert callable(getattr(cls(), cls.FUNCTION))


def test_models_hallo_is_registered_after_extra_model_paths(tmp_path) -> None:
    extra = tmp_path / "elsewhere" / "hallo"
    with comfy_env(tmp_path / "models", extra_hallo_paths=[extra]) as env:
        assert env.folder_paths.get_folder_paths("hallo") == [str(extra), str(tmp_path / "models" / "hallo")]


def test_help_pages_exist_for_every_node(comfy) -> None:
    web = REPO / comfy.pack.WEB_DIRECTORY
    for node_id in NODE_IDS:
        page = web / "docs" / f"{node_id}.md"
        assert page.is_file(), page
        assert node_id in page.read_text() or comfy.nodes()[node_id].GET_SCHEMA().display_name in page.read_text()


def test_importing_the_pack_loads_no_heavy_or_optional_library() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "import folder_paths;"  # ComfyUI imports it before any custom node
        "from tests.nodes.comfy_env import load_pack; pack = load_pack();"
        "assert pack.comfy_entrypoint is not None;"
        "heavy = [m for m in ('mediapipe', 'insightface', 'onnxruntime', 'cv2', 'diffusers', 'transformers', 'av') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(STANDIN), str(REPO)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_outside_comfyui_the_package_registers_nothing_and_imports_nothing(tmp_path) -> None:
    """What pytest (or any other tool) gets when it imports the checkout as a package: a folder
    whose name is an identifier, no ComfyUI around."""
    checkout = tmp_path / "hallo_pack"
    checkout.symlink_to(REPO, target_is_directory=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import hallo_pack;"
        "assert hallo_pack.NODE_CLASS_MAPPINGS == {} and hallo_pack.comfy_entrypoint is None;"
        "print(sorted(m for m in sys.modules if m.startswith('hallo_pack.')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_adapter_modules_touch_comfyui() -> None:
    """nodes/comfy_glue.py (runtime) and nodes/api.py (the node API) are the pack's only doors to ComfyUI."""
    comfy_modules = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution", "nodes"}
    users = set()
    for path in (REPO / "nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(n.split(".")[0] in comfy_modules for n in names):
                users.add(path.name)
    assert users == {"comfy_glue.py", "api.py"}


def _is_named(node, name: str) -> bool:
    """`name` or `<anything>.name`."""
    return (isinstance(node, ast.Name) and node.id == name) or (isinstance(node, ast.Attribute) and node.attr == name)


def _literal_schema_ids(path) -> dict[str, str]:
    """class name -> node_id, read the way a static scanner reads it (ComfyUI-Manager's, which builds the
    registry's node list without running the pack): a class whose base is `ComfyNode` or `<x>.ComfyNode`,
    a plain (not async) `define_schema`, inside it a call to `Schema` or `<x>.Schema` whose `node_id=` is
    a string literal. A name such as `node_id=NODE_ID` is invisible to it."""
    found = {}
    for cls in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(cls, ast.ClassDef) and any(_is_named(base, "ComfyNode") for base in cls.bases)):
            continue
        methods = [m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == "define_schema"]
        calls = [c for m in methods for c in ast.walk(m) if isinstance(c, ast.Call) and _is_named(c.func, "Schema")]
        for kw in (kw for call in calls for kw in call.keywords if kw.arg == "node_id"):
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                found[cls.name] = kw.value.value
    return found


def test_schemas_spell_their_node_id_literally_and_agree_with_node_id(comfy) -> None:
    """The registry and ComfyUI-Manager list a pack's nodes from a static scan of its source; the
    module constant NODE_ID (used for error messages) must stay the same string."""
    literal = {}
    for path in sorted((REPO / "nodes").glob("*.py")):
        literal.update(_literal_schema_ids(path))
    assert sorted(literal.values()) == sorted(NODE_IDS)
    for node_id, cls in comfy.nodes().items():
        assert literal[cls.__name__] == node_id == sys.modules[cls.__module__].NODE_ID == cls.__name__
