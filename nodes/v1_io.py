"""The part of ComfyUI's V3 `io` API our nodes use, for a ComfyUI too old to have `comfy_api.latest`.

Our nodes are written once, as V3 nodes. On such a ComfyUI they are built on these classes
instead, which answer the V1 protocol (`INPUT_TYPES`, `RETURN_TYPES`, `FUNCTION`, ...), so the
ids, input names, defaults and tooltips are the same in both worlds by construction. The
signatures follow `comfy_api.latest._io` (ComfyUI 0.3.64 / 0.33.0) for the arguments we pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class _Input:
    io_type: str = ""

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None, **options):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.options = options

    def v1_spec(self) -> tuple:
        options = _pruned({"display_name": self.display_name, "tooltip": self.tooltip, **self.options})
        return (self.io_type, options)


class _Output:
    io_type: str = ""

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None):
        self.id, self.display_name, self.tooltip = id, display_name, tooltip


def _socket(io_type: str, input_class: type = _Input) -> type:
    return type(io_type, (), {
        "io_type": io_type,
        "Input": type("Input", (input_class,), {"io_type": io_type}),
        "Output": type("Output", (_Output,), {"io_type": io_type}),
    })


def Custom(io_type: str) -> type:  # noqa: N802 - mirrors io.Custom
    return _socket(io_type)


class _IntInput(_Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None, min=None, max=None,
                 step=None, control_after_generate=None):
        super().__init__(id, display_name, optional, tooltip, default=default, min=min, max=max, step=step,
                         control_after_generate=control_after_generate)


class _FloatInput(_Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None, min=None, max=None,
                 step=None, round=None):
        super().__init__(id, display_name, optional, tooltip, default=default, min=min, max=max, step=step, round=round)


class _BooleanInput(_Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None,
                 label_on=None, label_off=None):
        super().__init__(id, display_name, optional, tooltip, default=default, label_on=label_on, label_off=label_off)


class _StringInput(_Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, multiline=False, placeholder=None,
                 default=None, dynamic_prompts=None):
        super().__init__(id, display_name, optional, tooltip, default=default, multiline=multiline,
                         placeholder=placeholder, dynamicPrompts=dynamic_prompts)


class _ComboInput(_Input):
    def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, default=None):
        super().__init__(id, display_name, optional, tooltip, default=default)
        self.choices = list(options or [])

    def v1_spec(self) -> tuple:
        return (self.choices, super().v1_spec()[1])


Int = _socket("INT", _IntInput)
Float = _socket("FLOAT", _FloatInput)
Boolean = _socket("BOOLEAN", _BooleanInput)
String = _socket("STRING", _StringInput)
Combo = _socket("COMBO", _ComboInput)
Image = _socket("IMAGE")
Mask = _socket("MASK")
Audio = _socket("AUDIO")
Video = _socket("VIDEO")


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    description: str = ""
    is_output_node: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui: dict = None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if self.args else None


class _SchemaAttribute:
    """A V1 class attribute (RETURN_TYPES, CATEGORY, ...) read off the node's V3 schema when asked."""

    def __init__(self, read):
        self.read = read

    def __get__(self, obj, owner):
        return self.read(owner.define_schema())


class ComfyNode:
    """Base of a V3-style node that ComfyUI's V1 loader can run."""

    FUNCTION = "run"
    CATEGORY = _SchemaAttribute(lambda s: s.category)
    DESCRIPTION = _SchemaAttribute(lambda s: s.description)
    OUTPUT_NODE = _SchemaAttribute(lambda s: s.is_output_node)
    RETURN_TYPES = _SchemaAttribute(lambda s: tuple(o.io_type for o in s.outputs))
    RETURN_NAMES = _SchemaAttribute(lambda s: tuple(o.display_name or o.io_type for o in s.outputs))
    OUTPUT_TOOLTIPS = _SchemaAttribute(lambda s: tuple(o.tooltip for o in s.outputs))

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 - the V1 protocol's name
        types: dict = {"required": {}}
        for i in cls.define_schema().inputs:
            types.setdefault("optional" if i.optional else "required", {})[i.id] = i.v1_spec()
        return types

    def run(self, **kwargs):
        out = type(self).execute(**kwargs)
        return {"ui": out.ui, "result": out.args} if out.ui is not None else out.args
