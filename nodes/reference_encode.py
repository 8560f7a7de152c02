"""HalloReferenceEncode: HALLO_FACE -> HALLO_REFERENCE, with the portrait's ReferenceNet rows computed once."""

from __future__ import annotations

from .api import CATEGORY, FACE, PIPELINE, REFERENCE, io
from .errors import blame

NODE_ID = "HalloReferenceEncode"


class HalloReferenceEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloReferenceEncode",
            display_name="Hallo Reference Encode",
            category=f"{CATEGORY}/preprocessing",
            description="Encodes the portrait once: identity tokens, FaceLocator features and the ReferenceNet rows of "
            "the reference image. ComfyUI keeps the result, so every clip and every re-run with the same portrait "
            "reuses it.",
            inputs=[
                PIPELINE.Input("pipeline", tooltip="From Hallo Model Loader."),
                FACE.Input("face", tooltip="From Hallo Face Mask."),
            ],
            outputs=[REFERENCE.Output("reference", display_name="reference",
                                      tooltip="The encoded portrait for Hallo Sampler.")],
        )

    @classmethod
    def execute(cls, pipeline, face) -> io.NodeOutput:
        with blame(NODE_ID, "face", models_input="pipeline"), pipeline.placement.computing():
            reference = pipeline.prepare_reference(face, image_rows=True)
        return io.NodeOutput(reference)
