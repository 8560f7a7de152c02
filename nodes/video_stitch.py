"""HalloVideoStitch: HALLO_FRAMES segments + AUDIO -> IMAGE frames, the AUDIO cut to them, a VIDEO."""

from __future__ import annotations

from . import comfy_glue as glue
from .api import CATEGORY, FRAMES, io
from .convert import chw_to_image, cut_audio, make_audio, single_audio
from .errors import blame

NODE_ID = "HalloVideoStitch"
EXTRA_SEGMENTS = ("frames_2", "frames_3", "frames_4")


class HalloVideoStitch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloVideoStitch",
            display_name="Hallo Video Stitch",
            category=f"{CATEGORY}/output",
            description="Joins up to four segments from Hallo Sampler in frame order (they must follow each other "
            "without gaps), cuts the audio to the frames, and makes IMAGE frames (for upscalers, interpolators, "
            "face restorers) and a VIDEO for Save Video.",
            inputs=[
                FRAMES.Input("frames", tooltip="A segment from Hallo Sampler (or the first of several)."),
                io.Audio.Input("audio",
                               tooltip="The speech, e.g. the 'audio' output of Hallo Audio Embed or Load Audio."),
                FPS_INPUT,
                *(FRAMES.Input(name, optional=True, tooltip="Another segment; segments are joined in frame order.")
                  for name in EXTRA_SEGMENTS),
            ],
            outputs=list(STITCHED_OUTPUTS),
        )

    @classmethod
    def execute(cls, frames, audio: dict, fps: float, frames_2=None, frames_3=None, frames_4=None) -> io.NodeOutput:
        from ..hallo_pipeline.frames import stitch

        segments = [s for s in (frames, frames_2, frames_3, frames_4) if s is not None]
        with blame(NODE_ID, "frames"):
            images = chw_to_image(stitch(segments))
        return io.NodeOutput(*stitched_outputs(images, audio, min(s.start_frame for s in segments), fps, NODE_ID))


FPS_INPUT = io.Float.Input(
    "fps", default=25.0, min=1.0, max=120.0, step=1.0,
    tooltip="Frame rate of the VIDEO, also used to cut the audio. Hallo's frames are 25 per second of audio; keep 25 "
    "unless you retime on purpose.",
)
STITCHED_OUTPUTS = (
    io.Image.Output("images", display_name="images", tooltip="All frames, [frames, height, width, 3]."),
    io.Audio.Output("audio_cut", display_name="audio", tooltip="The audio of exactly these frames."),
    io.Video.Output("video", display_name="video", tooltip="Frames + audio, for Save Video."),
    # Last, so links saved by output slot number keep pointing at the same outputs.
    io.Float.Output("fps_out", display_name="fps",
                    tooltip="The frame rate, for Create Video, VideoHelperSuite's Video Combine or Hallo Paste Back."),
)


def stitched_outputs(images, audio: dict, start_frame: int, fps: float, node_id: str) -> tuple:
    """IMAGE frames starting at `start_frame` + the whole AUDIO -> (images, the audio of exactly these frames,
    a VIDEO of both, fps): what the stitching nodes output."""
    images = glue.to_output(images)
    with blame(node_id, "audio"):
        waveform, sample_rate = single_audio(audio)
    cut = cut_audio(waveform, sample_rate, start_frame / fps, images.shape[0] / fps)
    cut = make_audio(glue.to_output(cut), sample_rate)
    return images, cut, glue.make_video(images, cut, fps), float(fps)
