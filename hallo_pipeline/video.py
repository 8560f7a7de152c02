"""Writing the result: mp4 with h264 video and AAC audio through PyAV, streamed frame by frame.

A video is written under a temporary name beside the target and renamed only when it is
complete, so a failed or cancelled run never leaves a file that looks finished.
`check_output_path` refuses an output that cannot work before any heavy work starts.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

# Sample rates the AAC encoder accepts; others are resampled to 48 kHz.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)

# File name ending -> FFmpeg muxer. All three hold h264 + AAC as they are, so .mov and .mkv
# are honoured rather than refused; anything else (.gif, .webm, .avi, ...) would need other codecs.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

# libx264 threads, pinned: PyAV leaves x264 at "auto" = one slice per CPU this process may use,
# and the slices are in the bytes, so the same frames gave different files on another machine,
# in a container with a CPU limit or under taskset. x264's threads are deterministic for a fixed
# count; 4 frame threads cost no speed against auto on a small machine (see the VideoWriter).
X264_THREADS = 4

# No "Lavf"/"Lavc" version strings, no random Matroska segment UID, no creation date.
BITEXACT_CONTAINER = {"fflags": "+bitexact"}
BITEXACT_CODEC = {"flags": "+bitexact"}


@dataclass(frozen=True)
class OutputPlan:
    """Where a video will be written: `path` is absolute with `~` expanded and its folder resolved
    (symlinks, `..`); its last part is the name as given. `replaces_existing`: a file of that name
    exists and will be replaced once the new video is complete."""

    path: Path
    replaces_existing: bool

    @property
    def container(self) -> str:
        return CONTAINERS[self.path.suffix.lower()]


def partial_path(path: Path) -> Path:
    """The temporary name a video is written under: hidden, beside the target, one per process."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def check_output_path(output: str | Path, inputs: Mapping[str, str | Path | None] | None = None) -> OutputPlan:
    """Refuse an output that would lose data or fail late; call it before any heavy work.

    - `~` is expanded (a quoted '~/x.mp4' would otherwise create a folder named `~`);
    - the output may not be one of `inputs` ({name: path}, e.g. the portrait and the audio);
    - it may not be a folder, and must end in .mp4, .mov or .mkv (any case; all hold h264 + AAC).
      A name without an ending is refused rather than silently renamed;
    - its folder is created if missing and must take a new file: this is tried by really creating
      and removing the temporary file, since os.access is wrong for root and read-only mounts.
      Folders created only for the try are removed again.
    Replacing another existing file is allowed; the plan says so.
    """
    path = Path(output).expanduser()
    path = path.parent.resolve() / path.name
    for name, value in (inputs or {}).items():
        if value is not None and _same_file(path, Path(value).expanduser()):
            other = (path.with_suffix(".mp4") if path.suffix.lower() != ".mp4"
                     else path.with_name(f"{path.stem}_video.mp4"))
            raise InputError(
                f"output '{path}' is the {name} file '{value}'; writing the video there would destroy "
                f"the {name}. Choose another output name, e.g. '{other}'"
            )
    if path.is_dir():
        raise InputError(f"output '{path}' is a folder; give a file name inside it, e.g. '{path / 'result.mp4'}'")
    _check_suffix(path)
    _check_folder_takes_files(path)
    return OutputPlan(path, replaces_existing=os.path.lexists(path))


def _same_file(a: Path, b: Path) -> bool:
    """Same file through symlinks and `..`; samefile also catches case-insensitive names and hard links."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: they cannot be the same file
        return False


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() in CONTAINERS:
        return
    name = path.stem if path.suffix else path.name
    what = f"ends in '{path.suffix}'" if path.suffix else "has no file ending"
    raise InputError(
        f"output '{path}' {what}, but the video is written as h264 + AAC, which needs .mp4 "
        f"(or .mov, .mkv); use '{path.with_name(name + '.mp4')}'"
    )


def _check_folder_takes_files(path: Path) -> None:
    folder = path.parent
    created = _make_folders(folder, path)
    try:
        probe = partial_path(path)
        try:
            # O_EXCL is left out: a leftover of this name can only be a crashed run's, and is garbage.
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.close(fd)
            finally:  # also when a signal interrupts here
                probe.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(f"output '{path}' cannot be written: {_why(exc, folder)}; choose an output in a "
                             "folder you can write to") from exc
    finally:
        for made in reversed(created):  # leave no empty folders behind if the run fails later
            try:
                made.rmdir()
            except OSError:
                pass


def _make_folders(folder: Path, path: Path) -> list[Path]:
    """Create the missing folders above `path`, outermost first; return those created."""
    missing = []
    parent = folder
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"output '{path}' cannot be written: '{parent}' is a file, not a folder; "
                         "choose an output in a folder")
    created = []
    for made in reversed(missing):
        try:
            made.mkdir()
        except FileExistsError:  # someone else made it meanwhile
            continue
        except OSError as exc:
            for undo in reversed(created):
                undo.rmdir()
            raise InputError(f"output '{path}' cannot be written: {_why(exc, made.parent)}; choose an "
                             "output in a folder you can write to") from exc
        created.append(made)
    return created


def _why(exc: OSError, folder: Path) -> str:
    if exc.errno == errno.EROFS:
        return f"the folder '{folder}' is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to create files in the folder '{folder}'"
    if exc.errno == errno.ENOSPC:
        return f"the disk holding the folder '{folder}' is full"
    if exc.errno == errno.ENOTDIR:
        return f"a part of the folder '{folder}' is a file, not a folder"
    return f"creating a file in the folder '{folder}' failed ({exc.strerror or exc})"


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (rounded, as image writers do)."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _audio_for_aac(waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """(C, T) float -> (C', T') float32 with C' in {1, 2} and an AAC-compatible rate."""
    audio = np.asarray(waveform, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.shape[0] > 2:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate not in AAC_RATES:
        from scipy.signal import resample_poly

        g = math.gcd(int(sample_rate), 48000)
        audio = resample_poly(audio, 48000 // g, int(sample_rate) // g, axis=1).astype(np.float32)
        sample_rate = 48000
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0)), sample_rate


class VideoWriter:
    """Stream frames into `path` (h264 yuv420p, or lossless RGB, + AAC in .mp4, .mov or .mkv). Use as a context
    manager.

    The audio, if given, is the original track; at `close()` it is cut to the video's length.
    `path` goes through `check_output_path` (with `inputs`, the files it must not overwrite) first.

    Reproducible bytes: with the same PyAV/FFmpeg/x264 build, the same frames and audio give a
    byte-identical file whatever the number of CPUs this process may use and whatever the date.
    Before, x264 cut each frame into one slice per usable CPU (PyAV's default), so a container
    with a CPU limit, `taskset` or another machine gave other bytes; now it runs `X264_THREADS`
    frame threads, and the muxer and both encoders run in bitexact mode (no "Lavf62.x"/"Lavc62.x"
    version strings, no random Matroska UID or date; mp4 carries no creation time unless asked).
    Not promised: other builds (the encoders change, and x264 writes its version and settings into
    the stream) or other CPU models (x264 and the AAC encoder pick SIMD code per CPU). One effect is
    still unexplained: on a 2-CPU machine with 4 busy processes, encoding tiny 96x64 clips while
    multi-threaded PyTorch work ran between frames, a few runs in 300 differed in one frame, even
    with one x264 thread and identical input; it did not recur in later runs of the same script,
    nor with PyTorch on one thread, nor at 512x512.
    Speed (100 noisy 512x512 frames + audio, 2-CPU machine, median of 4): 3.31 s before, 3.06 s
    now; on one CPU 5.71 s before, 5.79 s now.
    """

    def __init__(
        self,
        path: str | Path,
        fps: int = 25,
        audio: np.ndarray | torch.Tensor | None = None,
        sample_rate: int | None = None,
        crf: int = 18,
        inputs: Mapping[str, str | Path | None] | None = None,
        lossless: bool = False,
        metadata: Mapping[str, str] | None = None,
    ):
        """`lossless`: RGB kept exactly (libx264rgb at qp 0, rgb24; larger files that fewer players show), for
        frames that are processed further, e.g. the segments of a long video that `join` blends. `metadata`:
        container tags (mp4/mov write custom ones only when asked, so they are asked to)."""
        import av

        if audio is not None and sample_rate is None:
            raise ValueError("sample_rate is required with audio")
        plan = check_output_path(path, inputs)
        self.path = plan.path
        self.replaces_existing = plan.replaces_existing
        self.fps = fps
        self.frames_written = 0
        self._tmp = partial_path(self.path)
        self._video = None
        self._crf = crf
        self._lossless = lossless
        self._audio = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = dict(BITEXACT_CONTAINER)
        if metadata and plan.container != "matroska":
            options["movflags"] = "use_metadata_tags"
        self._container = av.open(str(self._tmp), mode="w", format=plan.container, container_options=options)
        self._container.metadata.update(metadata or {})
        try:
            if audio is not None:
                self._add_audio(audio, int(sample_rate))
        except BaseException:
            self.abort()
            raise

    def _add_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> None:
        data = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
        self._audio_data, self._audio_rate = _audio_for_aac(data, sample_rate)
        self._audio = self._container.add_stream("aac", rate=self._audio_rate)
        self._audio.layout = "mono" if self._audio_data.shape[0] == 1 else "stereo"
        self._audio.options = dict(BITEXACT_CODEC)

    def _open_video(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"h264 needs even frame sizes, got {width}x{height}")
        self._video = self._container.add_stream("libx264rgb" if self._lossless else "libx264", rate=self.fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "rgb24" if self._lossless else "yuv420p"
        quality = {"qp": "0"} if self._lossless else {"crf": str(self._crf)}
        self._video.options = {**quality, **BITEXACT_CODEC}
        self._video.codec_context.thread_count = X264_THREADS
        self._video.codec_context.thread_type = "FRAME"

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """frames: (N, 3, H, W) float in [0, 1], or (N, H, W, 3) uint8."""
        import av

        pixels = frames_to_uint8(frames) if isinstance(frames, torch.Tensor) else np.asarray(frames, dtype=np.uint8)
        if self._video is None:
            self._open_video(pixels.shape[1], pixels.shape[2])
        for rgb in pixels:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in self._video.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def _write_audio(self) -> None:
        import av

        length = int(round(self.frames_written / self.fps * self._audio_rate))
        data = self._audio_data[:, :length]
        size = self._audio.codec_context.frame_size or 1024
        for start in range(0, data.shape[1], size):
            chunk = np.ascontiguousarray(data[:, start : start + size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._audio.layout.name)
            frame.sample_rate = self._audio_rate
            frame.pts = start
            for packet in self._audio.encode(frame):
                self._container.mux(packet)
        for packet in self._audio.encode(None):
            self._container.mux(packet)

    def close(self) -> Path:
        """Flush, mux the audio cut to the video length, and move the file to its final name.

        Whatever fails here (a full disk, the rename), the temporary file is removed.
        """
        if self._video is None:
            self.abort()
            raise ValueError("no frames were written")
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._write_audio()
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._move_into_place()
        return self.path

    def _move_into_place(self) -> None:
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise InputError(
                f"output '{self.path}': the finished video could not be given its name "
                f"({exc.strerror or exc}); nothing was written. Check that the name is free and the "
                "folder writable, or choose another output"
            ) from exc

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be half-initialised; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_video_info(path: str | Path) -> dict:
    """Codec names, frame rate, frame count and stream durations of a written file (for checks)."""
    import av

    with av.open(str(path)) as container:
        info: dict = {}
        if container.streams.video:
            v = container.streams.video[0]
            info["video_codec"] = v.codec_context.name
            info["fps"] = Fraction(v.average_rate) if v.average_rate else None
            info["frames"] = sum(1 for _ in container.decode(video=0))
            info["width"], info["height"] = v.width, v.height
        container.seek(0)
        if container.streams.audio:
            a = container.streams.audio[0]
            info["audio_codec"] = a.codec_context.name
            info["sample_rate"] = a.codec_context.sample_rate
            samples = sum(f.samples for f in container.decode(audio=0))
            info["audio_seconds"] = samples / a.codec_context.sample_rate
    return info
