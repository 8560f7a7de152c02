"""Stand-in of comfy_api.latest._io for the types and classes the pack uses.

Constructor signatures, `as_dict()` and `Schema.get_v1_info()` (what /object_info serves and
what the frontend lays widgets out by) follow ComfyUI 0.3.64 / 0.33.0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


def prune_dict(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Input:
    io_type: str = None

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}

    def as_dict(self):
        return prune_dict({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip,
                           "lazy": self.lazy}) | prune_dict(self.extra_dict)

    def get_io_type(self):
        return self.io_type


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None,
                 extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self):
        return super().as_dict() | prune_dict({"default": self.default, "socketless": self.socketless,
                                               "widgetType": self.widget_type, "forceInput": self.force_input})


class Output:
    io_type: str = None

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list


def _comfytype(io_type: str, input_class: type = Input, output_class: type = Output) -> type:
    return type(io_type, (), {
        "io_type": io_type,
        "Input": type("Input", (input_class,), {"io_type": io_type}),
        "Output": type("Output", (output_class,), {"io_type": io_type}),
    })


def Custom(io_type: str) -> type:  # noqa: N802
    return _comfytype(io_type)


class _BooleanInput(WidgetInput):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: bool = None, label_on: str = None, label_off: str = None, socketless: bool = None,
                 force_input: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
        self.label_on, self.label_off = label_on, label_off

    def as_dict(self):
        return super().as_dict() | prune_dict({"label_on": self.label_on, "label_off": self.label_off})


class _IntInput(WidgetInput):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: int = None, min: int = None, max: int = None, step: int = None,
                 control_after_generate: bool = None, display_mode=None, socketless: bool = None,
                 force_input: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
        self.min, self.max, self.step = min, max, step
        self.control_after_generate = control_after_generate

    def as_dict(self):
        return super().as_dict() | prune_dict({"min": self.min, "max": self.max, "step": self.step,
                                               "control_after_generate": self.control_after_generate})


class _FloatInput(WidgetInput):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: float = None, min: float = None, max: float = None, step: float = None, round: float = None,
                 display_mode=None, socketless: bool = None, force_input: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
        self.min, self.max, self.step, self.round = min, max, step, round

    def as_dict(self):
        return super().as_dict() | prune_dict(
            {"min": self.min, "max": self.max, "step": self.step, "round": self.round}
        )


class _StringInput(WidgetInput):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                 socketless: bool = None, force_input: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
        self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

    def as_dict(self):
        return super().as_dict() | prune_dict({"multiline": self.multiline, "placeholder": self.placeholder,
                                               "dynamicPrompts": self.dynamic_prompts})


class _ComboInput(WidgetInput):
    def __init__(self, id: str, options=None, display_name: str = None, optional=False, tooltip: str = None,
                 lazy: bool = None, default=None, control_after_generate: bool = None, upload=None, image_folder=None,
                 remote=None, socketless: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
        self.multiselect = False
        self.options = options
        self.control_after_generate = control_after_generate

    def as_dict(self):
        return super().as_dict() | prune_dict({"multiselect": self.multiselect, "options": self.options,
                                               "control_after_generate": self.control_after_generate})


Boolean = _comfytype("BOOLEAN", _BooleanInput)
Int = _comfytype("INT", _IntInput)
Float = _comfytype("FLOAT", _FloatInput)
Combo = _comfytype("COMBO", _ComboInput)
String = _comfytype("STRING", _StringInput)
Image = _comfytype("IMAGE")
Mask = _comfytype("MASK")
Audio = _comfytype("AUDIO")
Video = _comfytype("VIDEO")


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = None
    outputs: list = None
    hidden: list = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self):
        input_ids = [i.id for i in self.inputs] if self.inputs is not None else []
        output_ids = [o.id for o in self.outputs] if self.outputs is not None else []
        issues = []
        if len(set(input_ids)) != len(input_ids):
            issues.append(
                f"Input ids must be unique, but {[k for k, c in Counter(input_ids).items() if c > 1]} are not."
            )
        if len(set(output_ids)) != len(output_ids):
            issues.append(
                f"Output ids must be unique, but {[k for k, c in Counter(output_ids).items() if c > 1]} are not."
            )
        if set(input_ids) & set(output_ids):
            issues.append(
                f"Ids must be unique between inputs and outputs, but {set(input_ids) & set(output_ids)} are not."
            )
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self):
        if self.outputs is not None:
            for i, output in enumerate(self.outputs):
                if output.id is None:
                    output.id = f"_{i}_{output.io_type}_"

    def get_v1_info(self, cls) -> dict:
        """The node's /object_info entry."""
        inputs: dict = {"required": {}}
        for i in self.inputs or []:
            as_dict = i.as_dict()
            as_dict.pop("optional", None)
            inputs.setdefault("optional" if i.optional else "required", {})[i.id] = (i.get_io_type(), as_dict)
        outputs = self.outputs or []
        return {
            "input": inputs,
            "input_order": {key: list(value.keys()) for key, value in inputs.items()},
            "output": [o.io_type for o in outputs],
            "output_is_list": [o.is_output_list for o in outputs],
            "output_name": [o.display_name if o.display_name else o.io_type for o in outputs],
            "output_tooltips": [o.tooltip if o.tooltip else None for o in outputs],
            "name": self.node_id,
            "display_name": self.display_name,
            "category": self.category,
            "description": self.description,
            "output_node": self.is_output_node,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        }


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index) -> Any:
        return self.args[index]


class ComfyNode:
    RELATIVE_PYTHON_MODULE = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802
        schema = cls.define_schema()
        schema.finalize()
        schema.validate()
        return schema

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:  # noqa: N802
        return cls.GET_SCHEMA().get_v1_info(cls)
