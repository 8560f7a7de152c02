"""HalloPasteBack: generated IMAGE frames + HALLO_FACE -> the whole photo, moving (IMAGE frames at the photo's size)."""

from __future__ import annotations

import math

import torch

from ..hallo_pipeline.config import FEATHER, MAX_SIDE
from . import comfy_glue as glue
from .api import CATEGORY, FACE, io
from .errors import blame

NODE_ID = "HalloPasteBack"
# ComfyUI IMAGE batches are float32: 4 bytes per colour value.
BYTES_PER_VALUE = 4
# The share of the memory free when the node starts that the output batch may take; the rest is for the
# work on one frame (the photo and a pasted frame in uint8, the blended crop in float32) and later nodes.
MEMORY_SHARE = 0.9
GIB = 2**30
PASTE_OPTIONS = ("feather", "color_match", "max_side")


class HalloPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloPasteBack",
            display_name="Hallo Paste Back",
            category=f"{CATEGORY}/output",
            description="Pastes every generated frame back into the photo its face was cut from (Hallo Face Mask "
            "with framing crop), with a feathered edge and the photo's colours, so the video is the whole photo at "
            "its own size and aspect ratio. Put it after Hallo Video Stitch (or an upscaler / face restorer) and "
            "before Create Video or Save Video.",
            inputs=[
                io.Image.Input(
                    "images", tooltip="The generated frames, e.g. Hallo Video Stitch's images, or upscaled or restored "
                    "ones: any size of the crop's shape works (square for Hallo, 3:2 for Hallo3), each frame is "
                    "resized to the crop it came from.",
                ),
                FACE.Input("face", tooltip="From Hallo Face Mask (framing crop): the photo and where the crop was "
                           "cut from it."),
                io.Float.Input(
                    "feather", default=FEATHER.default, min=FEATHER.low, max=FEATHER.high, step=0.01,
                    tooltip="Width of the soft edge where the frame fades into the photo, as a fraction of the crop's "
                    "side; 0 is a hard edge. Edges on the photo's border need none.",
                ),
                io.Boolean.Input(
                    "color_match", default=True,
                    tooltip="Match the frames' colour and contrast to the photo (one correction, from the first "
                    "frame, for the whole video), so the pasted crop does not show as a patch.",
                ),
                io.Int.Input(
                    "max_side", default=MAX_SIDE.default, min=MAX_SIDE.low, max=MAX_SIDE.high,
                    tooltip="0: the photo's own size. Otherwise the output's longer side in pixels at most (e.g. "
                    "1920), to keep large photos to a size video players and memory can take.",
                ),
                # Optional and last: workflows saved before it existed load unchanged.
                io.Float.Input(
                    "fps", default=25.0, min=1.0, max=120.0, step=1.0, optional=True,
                    tooltip="The frame rate, passed through to the fps output (connect Hallo Video Stitch's fps), so "
                    "Create Video or VideoHelperSuite's Video Combine get it from here.",
                ),
            ],
            outputs=[
                io.Image.Output("images_out", display_name="images",
                                tooltip="The whole photo with the animated face, [frames, height, width, 3] at the "
                                "photo's size (even sides for video; the longer side at most max_side)."),
                io.Float.Output("fps_out", display_name="fps", tooltip="The fps input, passed through."),
            ],
        )

    @classmethod
    def execute(cls, images, face, feather: float, color_match: bool, max_side: int, fps: float = 25.0
                ) -> io.NodeOutput:
        from ..hallo_pipeline.framing import check_paste_options, output_size

        with blame(NODE_ID, "max_side", inputs={name: name for name in PASTE_OPTIONS}):
            check_paste_options(feather, color_match, max_side)
        with blame(NODE_ID, "face"):
            framing = _crop_framing(face)
        with blame(NODE_ID, "images"):
            count = _check_frames(images, framing)
        width, height = output_size(framing.width, framing.height, max_side)
        device = glue.output_device()
        if device.type == "cpu":
            with blame(NODE_ID, "max_side"):
                check_memory(count, framing.width, framing.height, max_side, free_memory())
        with blame(NODE_ID, "images", inputs={name: name for name in PASTE_OPTIONS}):
            paste = face.paste_back(feather=feather, color_match=color_match, max_side=max_side)
            out = torch.empty((count, height, width, 3), dtype=torch.float32, device=device)
            for index in glue.each_item(count):  # one full-size frame at a time, straight into the batch
                frame = images[index, :, :, :3].detach().to("cpu", torch.float32).numpy()
                out[index].copy_(torch.from_numpy(paste.paste(frame))).div_(255)
        return io.NodeOutput(out, float(fps))


def _crop_framing(face):
    from ..hallo_pipeline.errors import InputError

    if getattr(face, "framing", None) is None or getattr(face, "photo", None) is None:
        raise InputError(
            "this face comes from Hallo Face Mask with framing 'stretch' (the release's geometry for the whole photo), "
            "so there is no crop to paste back into the photo; set Hallo Face Mask's framing to 'crop' (or leave "
            "this node out: stretched frames are the whole photo already)", "face",
        )
    return face.framing


def _check_frames(images, framing) -> int:
    from ..hallo_pipeline.errors import InputError
    from ..hallo_pipeline.framing import aspect_matches

    shape = tuple(images.shape)
    crop_height, crop_width = framing.crop_size
    if images.ndim != 4 or shape[3] < 3 or not aspect_matches(shape[1:3], framing):
        raise InputError(
            f"images must be frames [frames, height, width, 3] of the face's crop shape ({crop_width}x{crop_height} "
            f"in the photo) as Hallo Video Stitch makes them (or upscaled: any size of that shape works), got "
            f"{list(shape)}; frames of another shape would be distorted", "images",
        )
    return shape[0]


def free_memory() -> int | None:
    """Bytes of memory free for new allocations now; None when psutil (a ComfyUI requirement) is missing."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.virtual_memory().available


def batch_bytes(count: int, width: int, height: int) -> int:
    return count * width * height * 3 * BYTES_PER_VALUE


def largest_max_side(count: int, width: int, height: int, budget: float) -> int:
    """The largest max_side (a multiple of 8) whose output batch fits in `budget` bytes; 0 if none does."""
    from ..hallo_pipeline.framing import MIN_MAX_SIDE, output_size

    if count == 0:
        return max(width, height)
    # The batch grows with the square of the side; round down to a multiple of 8, then step down past any
    # rounding of the output's sides.
    side = int(max(width, height) * math.sqrt(budget / batch_bytes(count, width, height))) // 8 * 8
    while side >= MIN_MAX_SIDE and batch_bytes(count, *output_size(width, height, side)) > budget:
        side -= 8
    return side if side >= MIN_MAX_SIDE else 0


def _amount(size: float) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB / 10 else f"{size / 2**20:.0f} MiB"


def check_memory(count: int, width: int, height: int, max_side: int, free: int | None) -> None:
    """An InputError about max_side when the output batch of a `width` x `height` photo would not fit in
    MEMORY_SHARE of the `free` bytes; no check when `free` is unknown."""
    from ..hallo_pipeline.errors import InputError
    from ..hallo_pipeline.framing import output_size

    if free is None:
        return
    out_width, out_height = output_size(width, height, max_side)
    needed = batch_bytes(count, out_width, out_height)
    budget = free * MEMORY_SHARE
    if needed <= budget:
        return
    what = (f"{count} frames of {out_width}x{out_height} need {_amount(needed)} as a ComfyUI IMAGE batch "
            f"(float32), more than the {_amount(free)} of memory free now allows")
    side = largest_max_side(count, width, height, budget)
    if side:
        fits = output_size(width, height, side)
        raise InputError(
            f"{what}; set max_side to {side} or less (then {fits[0]}x{fits[1]}, "
            f"{_amount(batch_bytes(count, *fits))}), or free memory", "max_side",
        )
    raise InputError(f"{what}, even at the smallest max_side; free memory or make a shorter video", "max_side")
