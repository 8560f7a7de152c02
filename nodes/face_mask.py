"""HalloFaceMask: portrait IMAGE -> HALLO_FACE, the reference image the model sees, the region masks and the crop."""

from __future__ import annotations

from ..hallo_pipeline.config import CROP_SCALE, FACE_EXPAND_RATIO, FRAMING_OPTIONS, IMAGE_SIZE
from . import comfy_glue as glue
from .api import CATEGORY, FACE, PIPELINE, io
from .convert import chw_to_image, map_to_mask, rgb_to_image
from .errors import blame

NODE_ID = "HalloFaceMask"
# The `crop` output shows the crop at the photo's resolution up to this side; a crop of a huge
# photo would otherwise be a giant IMAGE (a 6000-pixel square is 432 MB as float32).
CROP_OUTPUT_MAX_SIDE = 2048


class HalloFaceMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloFaceMask",
            display_name="Hallo Face Mask",
            category=f"{CATEGORY}/preprocessing",
            description="Finds the face (mediapipe landmarks), cuts a crop around it from the photo (a square for "
            "Hallo, a 3:2 rectangle for Hallo3) or takes the whole photo as the release does, builds the identity "
            "embedding (insightface), Hallo's pose / face / lip region masks (empty for Hallo3, which has no regions) "
            "and the face box, and prepares the reference image at the working size.",
            inputs=[
                PIPELINE.Input("pipeline",
                               tooltip="From Hallo Model Loader; its model folder provides the face models."),
                io.Image.Input(
                    "image", tooltip="The portrait: one image of any size and aspect ratio, the face roughly frontal. "
                    "See framing for how it is fitted to the model.",
                ),
                io.Int.Input(
                    "image_size", default=IMAGE_SIZE.default, min=IMAGE_SIZE.low, max=IMAGE_SIZE.high, step=64,
                    tooltip="Hallo: working resolution of the video (square), a multiple of 64; it was trained at 512. "
                    "Hallo3 works at its weights' own size (720x480): leave 512.",
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
                # Optional, after the older widgets: workflows and prompts saved before they existed load
                # unchanged and run with the defaults.
                io.Combo.Input(
                    "framing", options=list(FRAMING_OPTIONS), default="crop", optional=True,
                    tooltip="crop: animate a crop around the face (crop_scale x its size; a square for Hallo, 3:2 for "
                    "Hallo3) and paste the frames back into the photo with Hallo Paste Back, so the video is the whole "
                    "photo at its own size. stretch: the release's geometry for the whole photo (Hallo: resized to a "
                    "square, so a non-square photo comes out squeezed; Hallo3: scaled and centre-cropped to 720x480).",
                ),
                io.Float.Input(
                    "crop_scale", default=CROP_SCALE.default, min=CROP_SCALE.low, max=CROP_SCALE.high, step=0.05,
                    optional=True,
                    tooltip="framing crop: the crop's shorter side (a square's side) as a multiple of the face's "
                    "size. 2.3 fits head, hair and neck; smaller gives the face more pixels, larger shows more "
                    "shoulders and background. Ignored by stretch.",
                ),
            ],
            outputs=[
                FACE.Output("face", display_name="face",
                            tooltip="Face analysis for Hallo Reference Encode and Hallo Paste Back."),
                io.Image.Output("reference_image", display_name="reference_image",
                                tooltip="The portrait as the model sees it (image_size x image_size): "
                                "the square around the face, or the stretched photo."),
                io.Mask.Output("pose_mask", display_name="pose_mask",
                               tooltip="Hallo: the region the pose weight acts on, everything outside the blurred "
                               "face box. Empty for Hallo3 (no regions)."),
                io.Mask.Output("face_mask", display_name="face_mask",
                               tooltip="Hallo: the region the face weight acts on, the blurred face box without the "
                               "lips. Empty for Hallo3."),
                io.Mask.Output("lip_mask", display_name="lip_mask",
                               tooltip="Hallo: the region the lip weight acts on, the blurred lip box. "
                               "Empty for Hallo3."),
                io.Mask.Output("face_region", display_name="face_region",
                               tooltip="The face box: Hallo's FaceLocator input (kept intact by Hallo2's motion-frame "
                               "drop); Hallo3's reference image is the photo inside it."),
                # Last, so links saved by output slot number keep pointing at the same outputs.
                io.Image.Output("crop", display_name="crop",
                                tooltip=f"The crop cut from the photo, at the photo's own resolution (at most "
                                f"{CROP_OUTPUT_MAX_SIDE} pixels on its longer side), edges repeated where it reaches "
                                "past the photo; with stretch, the whole photo."),
            ],
        )

    @classmethod
    def execute(cls, pipeline, image, image_size: int, face_expand_ratio: float, multiple_faces: str,
                allow_missing_identity: bool, framing: str = "crop",
                crop_scale: float = CROP_SCALE.default) -> io.NodeOutput:
        from ..hallo_pipeline.framing import check_framing_mode
        from ..hallo_pipeline.hallo.masks import check_image_size

        with blame(NODE_ID, "image_size", inputs={name: name for name in ("face_expand_ratio", "framing",
                                                                           "crop_scale")}):
            check_image_size(image_size)
            FACE_EXPAND_RATIO.check(face_expand_ratio)
            check_framing_mode(framing)
            CROP_SCALE.check(crop_scale)
        with blame(NODE_ID, "image", models_input="pipeline", inputs={"image_size": "image_size"}):
            face = pipeline.analyze_face(
                image, image_size, face_expand_ratio, framing=framing, crop_scale=crop_scale,
                multiple_faces=multiple_faces, allow_missing_identity=allow_missing_identity,
            )
        shown = face.previews()
        size = tuple(shown.reference.shape[-2:])
        masks = [map_to_mask(m, size) for m in (shown.pose, shown.face, shown.lip, shown.face_region)]
        reference = chw_to_image(shown.reference)
        return io.NodeOutput(face, *map(glue.to_output, (reference, *masks, _crop(face, image))))


def _crop(face, image):
    """The rectangle the face was cut from, at source resolution up to CROP_OUTPUT_MAX_SIDE on its longer side;
    stretch: the photo."""
    from ..hallo_pipeline.framing import crop_to_size

    if face.framing is None:
        return image
    height, width = face.framing.crop_size
    scale = min(1.0, CROP_OUTPUT_MAX_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return rgb_to_image(crop_to_size(face.photo, face.framing, size))
