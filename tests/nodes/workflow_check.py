"""Reads a UI-format workflow (what the ComfyUI frontend saves) and checks it against node schemas.

The layout rules are the frontend's: `widgets_values` lists the node's widget inputs (INT, FLOAT,
BOOLEAN, STRING, combos) in /object_info `input_order` (required, then optional), with one extra
value after an input that has `control_after_generate` ("fixed", "randomize", ...). A link
[id, origin, origin_slot, target, target_slot, type] joins an output slot to an input slot of
the same type. A workflow saved before a node gained optional widgets (at the end) or outputs (at
the end) lacks them; it still loads (the widgets get their defaults, ComfyUI leaves unset optional
inputs out of the prompt): `check_workflow(..., saved_before=True)` accepts that, the examples we
ship must be complete.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}

# The core nodes our workflows use, as ComfyUI 0.3.64 and 0.33.0 declare them: link inputs, the
# widget values the frontend stores (LoadImage / LoadAudio add the upload widget's), output types.
CORE_NODES = {
    "LoadImage": ({}, ["image", "upload"], ["IMAGE", "MASK"]),
    "LoadAudio": ({}, ["audio", "audioUI", "upload"], ["AUDIO"]),
    "SaveVideo": ({"video": "VIDEO"}, ["filename_prefix", "format", "codec"], []),
    "CreateVideo": ({"images": "IMAGE", "audio": "AUDIO"}, ["fps"], ["VIDEO"]),
    "PreviewImage": ({"images": "IMAGE"}, [], []),
    "MaskPreview": ({"mask": "MASK"}, [], []),
    "ImageScale": ({"image": "IMAGE"}, ["upscale_method", "width", "height", "crop"], ["IMAGE"]),
    # ComfyUI-Distributed's (github robertvoy/ComfyUI-Distributed, nodes/utilities.py and nodes/collector.py at
    # a91f9fb), for the distributed example; the frontend gives any INT input named "seed" a control widget.
    "DistributedSeed": ({}, ["seed", "control_after_generate"], ["INT"]),
    "DistributedCollector": ({"images": "IMAGE", "audio": "AUDIO"}, ["load_balance"], ["IMAGE", "AUDIO"]),
}


@dataclass
class NodeSpec:
    links: dict[str, str]  # link input name -> type
    required_links: set[str]
    widgets: list[tuple[str, object, dict]]  # (name, type or combo options, options) in frontend order
    outputs: list[str]
    optional: frozenset[str] = frozenset()  # optional inputs (links and widgets)


def spec_from_object_info(info: dict) -> NodeSpec:
    links, required, widgets = {}, set(), []
    optional = frozenset(info["input_order"].get("optional", []))
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            typ, options = info["input"][section][name]
            if isinstance(typ, list) or typ in WIDGET_TYPES and not options.get("forceInput"):
                widgets.append((name, options["options"] if typ == "COMBO" else typ, options))
            else:
                links[name] = typ
                if section == "required":
                    required.add(name)
    return NodeSpec(links, required, widgets, list(info["output"]), optional)


def _widget_problem(name, typ, options, value) -> str | None:
    if isinstance(typ, list):
        return None if value in typ else f"{name}={value!r} is not one of {typ}"
    ok = {"INT": isinstance(value, int) and not isinstance(value, bool), "BOOLEAN": isinstance(value, bool),
          "FLOAT": isinstance(value, (int, float)) and not isinstance(value, bool),
          "STRING": isinstance(value, str)}[typ]
    if not ok:
        return f"{name}={value!r} is not a {typ}"
    if typ in ("INT", "FLOAT") and not options.get("min", value) <= value <= options.get("max", value):
        return f"{name}={value!r} is outside [{options.get('min')}, {options.get('max')}]"
    return None


def check_workflow(workflow: dict, specs: dict[str, NodeSpec], saved_before: bool = False) -> list[str]:
    """Problems found (empty when the workflow fits the schemas). saved_before: accept nodes saved before
    their optional widgets or outputs at the end existed."""
    problems = []
    for key in ("nodes", "links", "last_node_id", "last_link_id", "version"):
        if key not in workflow:
            problems.append(f"missing top-level key {key!r}")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in nodes.values():
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in CORE_NODES:
            links, widgets, outputs = CORE_NODES[node["type"]]
            spec = NodeSpec(links, set(), [], outputs)
            if len(node.get("widgets_values") or []) != len(widgets):
                problems.append(
                    f"{where}: {len(node.get('widgets_values') or [])} widget values, expected {len(widgets)}"
                )
        elif node["type"] in specs:
            spec = specs[node["type"]]
            values = list(node.get("widgets_values") or [])
            for name, typ, options in spec.widgets:
                if not values:
                    if not (saved_before and name in spec.optional):
                        problems.append(f"{where}: no value for widget {name}")
                    break
                problem = _widget_problem(name, typ, options, values.pop(0))
                if problem:
                    problems.append(f"{where}: {problem}")
                if options.get("control_after_generate"):
                    control = values.pop(0) if values else None
                    if control not in CONTROL_VALUES:
                        problems.append(f"{where}: {name} needs a control_after_generate value, got {control!r}")
            if values:
                problems.append(f"{where}: {len(values)} widget values left over: {values}")
        else:
            problems.append(f"{where}: not one of our nodes or the core nodes the examples may use")
            continue
        inputs = node.get("inputs") or []
        widget_types = {name: typ for name, typ, _ in spec.widgets}
        for slot in inputs:
            if "widget" in slot:  # a widget turned into an input, e.g. to take a value from another node
                if widget_types.get(slot["name"]) != slot["type"] or slot["widget"].get("name") != slot["name"]:
                    problems.append(f"{where}: input {slot['name']}:{slot['type']} is no widget of the schema")
                continue
            if slot["name"] not in spec.links or slot["type"] != spec.links[slot["name"]]:
                problems.append(f"{where}: input {slot['name']}:{slot['type']} is not in the schema {spec.links}")
        connected = {slot["name"] for slot in inputs if slot.get("link") is not None}
        for name in spec.required_links - connected:
            problems.append(f"{where}: required input {name} is not connected")
        saved_outputs = [o["type"] for o in node.get("outputs") or []]
        if saved_outputs != (spec.outputs[: len(saved_outputs)] if saved_before else spec.outputs):
            problems.append(
                f"{where}: outputs {[o['type'] for o in node.get('outputs') or []]} != schema {spec.outputs}"
            )
    for link_id, origin, origin_slot, target, target_slot, typ in workflow["links"]:
        src, dst = nodes.get(origin), nodes.get(target)
        if src is None or dst is None:
            problems.append(f"link {link_id}: joins a missing node")
            continue
        out, inp = src["outputs"][origin_slot], dst["inputs"][target_slot]
        if not (out["type"] == inp["type"] == typ):
            problems.append(f"link {link_id}: {src['type']}.{out['name']}:{out['type']} -> "
                            f"{dst['type']}.{inp['name']}:{inp['type']} ({typ})")
        if link_id not in (out.get("links") or []) or inp.get("link") != link_id:
            problems.append(f"link {link_id}: not recorded on both ends")
    return problems


def to_prompt(workflow: dict, specs: dict[str, NodeSpec]) -> dict:
    """UI format -> {node id: (type, {input: value or (origin id, slot)})}, as ComfyUI queues it."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: (link[1], link[2]) for link in workflow["links"]}
    prompt = {}
    for node in nodes.values():
        values = list(node.get("widgets_values") or [])
        inputs = {}
        if node["type"] in CORE_NODES:
            inputs.update(zip(CORE_NODES[node["type"]][1], values))
        else:
            for name, _, options in specs[node["type"]].widgets:
                if not values:  # optional widgets a workflow saved before them lacks: left out, as ComfyUI does
                    break
                inputs[name] = values.pop(0)
                if options.get("control_after_generate"):
                    values.pop(0)
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None:
                inputs[slot["name"]] = links[slot["link"]]
        prompt[node["id"]] = (node["type"], inputs)
    return prompt
