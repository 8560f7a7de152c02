"""HalloFaceMask: portrait IMAGE -> HALLO_FACE, the reference image the model sees, and the region masks."""

from __future__ import annotations

from ..hallo_pipeline.config import FACE_EXPAND_RATIO, IMAGE_SIZE
from . import comfy_glue as glue
from .api import CATEGORY, FACE, PIPELINE, io
from .convert import chw_to_image, map_to_mask
from .errors import blame

NODE_ID = "HalloFaceMask"


class HalloFaceMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE_ID,
            display_name="Hallo Face Mask",
            category=f"{CATEGORY}/preprocessing",
            description="Finds the face (mediapipe landmarks), builds Hallo's pose / face / lip region masks and the "
            "identity embedding (insightface), and prepares the reference image at the working size.",
            inputs=[
                PIPELINE.Input("pipeline",
                               tooltip="From Hallo Model Loader; its model folder provides the face models."),
                io.Image.Input(
                    "image", tooltip="The portrait: one image, the face frontal and about 50-70% of the frame; it is "
                    "resized to a square of image_size (crop it square first to avoid stretching).",
                ),
                io.Int.Input(
                    "image_size", default=IMAGE_SIZE.default, min=IMAGE_SIZE.low, max=IMAGE_SIZE.high, step=64,
                    tooltip="Working resolution of the video (square), a multiple of 64. Hallo was trained at 512.",
                ),
                io.Float.Input(
                    "face_expand_ratio", default=FACE_EXPAND_RATIO.default, min=FACE_EXPAND_RATIO.low,
                    max=FACE_EXPAND_RATIO.high, step=0.05,
                    tooltip="How much the face box is enlarged around the landmarks (Hallo: 1.2). Larger boxes let "
                    "more of the head move with the audio.",
                ),
                io.Combo.Input(
                    "multiple_faces", options=["error", "largest"], default="error",
                    tooltip="What to do with several faces: error (stop and say so) or largest "
                    "(animate the largest face).",
                ),
                io.Boolean.Input(
                    "allow_missing_identity", default=False,
                    tooltip="When the identity model finds no face although the landmarks did: continue without "
                    "identity (a zero embedding, as the original release silently did) instead of stopping.",
                ),
            ],
            outputs=[
                FACE.Output("face", display_name="face", tooltip="Face analysis for Hallo Reference Encode."),
                io.Image.Output("reference_image", display_name="reference_image",
                                tooltip="The portrait as the model sees it (image_size x image_size)."),
                io.Mask.Output("pose_mask", display_name="pose_mask",
                               tooltip="Region the pose weight acts on: everything outside the blurred face box."),
                io.Mask.Output("face_mask", display_name="face_mask",
                               tooltip="Region the face weight acts on: the blurred face box without the lips."),
                io.Mask.Output("lip_mask", display_name="lip_mask",
                               tooltip="Region the lip weight acts on: the blurred lip box."),
                io.Mask.Output("face_region", display_name="face_region",
                               tooltip="The face box given to the FaceLocator "
                               "(and kept intact by Hallo2's motion-frame drop)."),
            ],
        )

    @classmethod
    def execute(cls, pipeline, image, image_size: int, face_expand_ratio: float, multiple_faces: str,
                allow_missing_identity: bool) -> io.NodeOutput:
        from ..hallo_pipeline.face.masks import check_image_size

        with blame(NODE_ID, "image_size", inputs={"face_expand_ratio": "face_expand_ratio"}):
            check_image_size(image_size)
            FACE_EXPAND_RATIO.check(face_expand_ratio)
        with blame(NODE_ID, "image", models_input="pipeline"):
            face = pipeline.analyze_face(
                image, image_size, face_expand_ratio,
                multiple_faces=multiple_faces, allow_missing_identity=allow_missing_identity,
            )
        maps = face.maps
        masks = [map_to_mask(m, image_size) for m in (maps.full, maps.face, maps.lip)]
        reference = chw_to_image((face.reference_image + 1) / 2)
        region = map_to_mask(face.face_region[0], image_size)
        return io.NodeOutput(face, *map(glue.to_output, (reference, *masks, region)))
