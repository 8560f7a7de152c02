"""HalloAudioEmbed: any ComfyUI AUDIO -> HALLO_AUDIO (wav2vec2 windows), its frame count, the AUDIO used."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..hallo_pipeline.config import CLIP_LENGTH
from ..hallo_pipeline.families import mode_options
from . import comfy_glue as glue
from .api import AUDIO_FEATURES, CATEGORY, MODE_TOOLTIP, PIPELINE, io
from .convert import make_audio, single_audio
from .errors import blame

NODE_ID = "HalloAudioEmbed"


@dataclass(frozen=True)
class EmbeddedAudio:
    """HALLO_AUDIO: the features and how they were made, so the sampler can stay consistent with them."""

    features: object  # hallo_pipeline.audio.features.AudioFeatures
    clip_length: int  # the features are padded to whole clips of this length
    mode: str  # the mode the audio was embedded for (`pipeline.resolve_mode`): Hallo's one pass or Hallo2's chunks
    seconds: float  # length of the track
    track: tuple | None = None  # (waveform (C, T), sample rate) before vocal separation, for `loudness`

    @cached_property
    def loudness(self):
        """RMS per video frame of the track, where Hallo Segment Plan cuts long audio (the command line plans from
        the same track, so both cut in the same places); measured only when a plan asks, once. None without
        a track."""
        from ..hallo_pipeline.independent import frame_loudness

        return None if self.track is None else frame_loudness(*self.track)

    @property
    def frames(self) -> int:
        return self.features.frames


class HalloAudioEmbed(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HalloAudioEmbed",
            display_name="Hallo Audio Embed",
            category=f"{CATEGORY}/preprocessing",
            description="Turns speech into wav2vec2 features, 25 video frames per second. Any sample rate and channel "
            "count; optional vocal separation for speech over music.",
            inputs=[
                PIPELINE.Input("pipeline", tooltip="From Hallo Model Loader; its model folder provides wav2vec2."),
                io.Audio.Input("audio",
                               tooltip="The speech (any sample rate, mono or stereo; one track, not a batch)."),
                io.Boolean.Input(
                    "separate_vocals", default=False,
                    tooltip="Isolate the voice before embedding (for speech over music or noise). Needs "
                    "audio_separator/Kim_Vocal_2.onnx in the model folder.",
                ),
                io.Combo.Input("mode", options=mode_options(), default="auto",
                               tooltip=MODE_TOOLTIP + " Use the sampler's mode."),
                io.Int.Input(
                    "clip_length", default=CLIP_LENGTH.default, min=CLIP_LENGTH.low, max=30, step=1,
                    tooltip="Frames generated per clip (Hallo: 16, as trained; at most 30 with the released weights, "
                    "whose motion modules hold 32 positions, two of them for the motion frames). The sampler follows "
                    "this value.",
                ),
            ],
            outputs=[
                AUDIO_FEATURES.Output("hallo_audio", display_name="hallo_audio",
                                      tooltip="Audio features for Hallo Sampler."),
                io.Int.Output("frame_count", display_name="frame_count",
                              tooltip="Frames of video the audio needs at 25 fps (its true length, not padded)."),
                io.Audio.Output("audio_used", display_name="audio",
                                tooltip="The track the features were computed from (before vocal separation), "
                                "for Hallo Video Stitch."),
            ],
        )

    @classmethod
    def execute(cls, pipeline, audio: dict, separate_vocals: bool, mode: str, clip_length: int) -> io.NodeOutput:
        with blame(NODE_ID, "audio"):
            waveform, sample_rate = single_audio(audio)
        if separate_vocals:
            with blame(NODE_ID, "separate_vocals"):
                pipeline.files.require("vocal_separator")
        with blame(NODE_ID, "audio", models_input="pipeline", inputs={"clip_length": "clip_length", "mode": "mode"}):
            features = pipeline.encode_audio(waveform, sample_rate, clip_length, separate_vocals, mode=mode)
        resolved = pipeline.resolve_mode(mode)
        embedded = EmbeddedAudio(features, clip_length, resolved, waveform.shape[-1] / sample_rate,
                                 (waveform.numpy(), sample_rate))
        used = make_audio(glue.to_output(waveform), sample_rate)
        return io.NodeOutput(embedded, embedded.frames, used)
