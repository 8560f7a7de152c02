"""Segment files ("shards") of a long video rendered on several machines, and joining them into the video.

A shard is one independent segment (`independent.py`) as a video file: lossless RGB (libx264rgb at qp 0, so
the join blends exactly the rendered 8-bit frames and the result is encoded once, lossily, at the end), no
audio, and the segment plan plus the segment's index in the file's metadata, so the files alone are enough
to join: `python -m hallo_pipeline join part_* --audio speech.wav --output out.mp4`.

A video framed as a crop of a photo keeps the model's frames (the crop) in its shards, with how to paste them
back (the framing, the paste options, a digest of the photo's pixels); `join ... --image photo.jpg` pastes the
joined frames. So the paste happens once, after the blend, as in the sequential video and the ComfyUI graph:
colour matching takes its correction from the video's first frame (not from each segment's), and a shard holds
the crop, not the whole photo.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch

from .errors import InputError
from .independent import SegmentPlan, join_stream
from .video import VideoWriter

TAG = "hallo_segment"  # the metadata key holding {"index": i, "plan": plan JSON}
BATCH = 16  # frames decoded at a time: memory stays a few frames whatever the video's length


def shard_writer(path: str | Path, plan: SegmentPlan, index: int, inputs=None, paste: dict | None = None
                 ) -> VideoWriter:
    """A writer for segment `index`'s frames that records the plan (`VideoWriter` checks the path first) and,
    for crops of a photo, how `join` pastes them back (`paste_recipe`)."""
    plan.segment(index)
    tag = json.dumps({"index": index, "plan": plan.to_json(), **({"paste": paste} if paste else {})})
    return VideoWriter(path, fps=plan.fps, inputs=inputs, lossless=True, metadata={TAG: tag})


def paste_recipe(photo, framing, **options) -> dict:
    """What `join` needs besides the photo to paste crops back into it: the framing, the paste options
    (feather, color_match, max_side) and a digest of the photo's pixels, so that another photo is refused."""
    return {"framing": asdict(framing), "options": options, "photo_sha256": _pixels_digest(photo)}


def _pixels_digest(rgb) -> str:
    return hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


@dataclass(frozen=True)
class Shard:
    path: Path
    plan: SegmentPlan
    index: int
    paste: dict | None = None  # `paste_recipe` where the frames are crops of a photo


def read_shard(path: str | Path) -> Shard:
    """The plan and segment index a shard file records; an `InputError` naming the file if it is none."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"segment file '{path}' does not exist", "parts")
    try:
        with av.open(str(path)) as container:
            # Matroska reads its tags back upper-cased, mp4 as written
            tag = {k.lower(): v for k, v in container.metadata.items()}.get(TAG)
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"segment file '{path}' cannot be read ({exc})", "parts") from exc
    if tag is None:
        raise InputError(f"'{path}' is not a segment file (no {TAG} tag); give the files that `animate --segments "
                         "N --segment-index i` wrote", "parts")
    try:
        data = json.loads(tag)
        return Shard(path, SegmentPlan.from_json(data["plan"]), int(data["index"]), data.get("paste"))
    except (ValueError, KeyError, TypeError) as exc:  # InputError is a ValueError: the plan's own message
        raise InputError(f"segment file '{path}': {exc}", "parts") from exc


def shard_frames(path: Path) -> Iterator[torch.Tensor]:
    """The shard's frames as (N, 3, H, W) float32 in [0, 1], `BATCH` at a time."""
    import av

    with av.open(str(path)) as container:
        batch = []
        for frame in container.decode(video=0):
            batch.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if len(batch) == BATCH:
                yield _as_float(batch)
                batch = []
        if batch:
            yield _as_float(batch)


def _as_float(pixels: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(pixels).permute(0, 3, 1, 2).float() / 255


def check_shards(paths: list[str | Path]) -> tuple[SegmentPlan, dict[int, Path]]:
    """One shard per segment of one plan, or an `InputError` that says which is missing or foreign."""
    plan, by_index, _ = _check_shards(paths)
    return plan, by_index


def _check_shards(paths: list[str | Path]) -> tuple[SegmentPlan, dict[int, Path], dict | None]:
    """`check_shards`, and the paste recipe every shard shares (None for whole frames)."""
    if not paths:
        raise InputError("no segment files given; pass every part_* file of the video", "parts")
    shards = [read_shard(p) for p in paths]
    plan = shards[0].plan
    by_index: dict[int, Path] = {}
    for shard in shards:
        if shard.plan != plan:
            raise InputError(f"'{shard.path}' belongs to another plan than '{shards[0].path}' (another audio, "
                             "seed, clip length or number of segments); join the parts of one video", "parts")
        if shard.paste != shards[0].paste:
            raise InputError(f"'{shard.path}' was framed from another photo or framing than '{shards[0].path}'; "
                             "render every part from the same photo with the same options", "parts")
        if shard.index in by_index:
            raise InputError(f"segment {shard.index} is given twice: '{by_index[shard.index]}' and '{shard.path}'",
                             "parts")
        by_index[shard.index] = shard.path
    missing = [s.index for s in plan.segments if s.index not in by_index]
    if missing:
        raise InputError(f"segments {missing} of {len(plan.segments)} are missing; render them with "
                         "--segment-index and join all parts together", "parts")
    return plan, by_index, shards[0].paste


def join_files(paths: list[str | Path], audio: str | Path, output: str | Path, image=None) -> Path:
    """Blend the shards of one plan in plan order and write them with the original `audio` (cut to the video);
    crops of a photo are pasted back into `image` (the photo they were rendered from) after the blend."""
    from .audio.features import frame_count
    from .audio.io import SAMPLE_RATE, load_audio, to_mono_16k

    plan, by_index, recipe = _check_shards(paths)
    frames = _joined(plan, by_index, recipe, image)  # checks the photo before the audio is read
    waveform, sample_rate = load_audio(audio)
    count = frame_count(to_mono_16k(waveform, sample_rate).shape[-1], SAMPLE_RATE, plan.fps)
    if count != plan.total_frames:
        raise InputError(f"the audio '{audio}' is {count} frames long, the segments were planned for "
                         f"{plan.total_frames}; give the audio the parts were rendered from", "audio")
    inputs = {"audio": audio, **({"image": image} if isinstance(image, (str, Path)) else {}),
              **{f"segment {i}": p for i, p in by_index.items()}}
    with VideoWriter(output, fps=plan.fps, audio=waveform, sample_rate=sample_rate, inputs=inputs) as writer:
        for batch in frames:
            writer.write(batch)
    return writer.path


def joined_frames(paths: list[str | Path], image=None) -> Iterator:
    """The joined video `join_files` writes, a batch at a time: (N, 3, H, W) float frames of whole-frame shards,
    or (1, H, W, 3) uint8 photos with crops pasted back into `image`. The shards and the photo are checked
    before the first batch is asked for."""
    return _joined(*_check_shards(paths), image)


def _joined(plan: SegmentPlan, by_index: dict[int, Path], recipe: dict | None, image) -> Iterator:
    from .video import frames_to_uint8

    paste = _paste_back(recipe, image) if recipe else None

    def batches():
        for batch in join_stream(plan, lambda i: shard_frames(by_index[i])):
            if paste is None:
                yield batch
                continue
            for pixels in frames_to_uint8(batch):  # one full-size photo in memory at a time
                yield paste.paste(pixels)[None]

    return batches()


def _paste_back(recipe: dict, image):
    """The `PasteBack` the shards' recipe describes, into `image` once it is known to be their photo."""
    from .face.images import to_rgb_uint8
    from .framing import Framing, PasteBack

    if image is None:
        raise InputError("the segments are crops of a photo (framing 'crop'); give that photo (--image) so the "
                         "joined frames are pasted back into it", "image")
    rgb = to_rgb_uint8(image)
    if _pixels_digest(rgb) != recipe["photo_sha256"]:
        raise InputError("this is not the photo the segments were rendered from (its pixels differ); give the same "
                         "photo file", "image")
    return PasteBack(rgb, Framing(**recipe["framing"]), **recipe["options"])
