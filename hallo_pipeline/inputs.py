"""The user's own files of a run (the photo and the speech), checked before any heavy work, for every family."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def check_user_files(image, audio) -> dict[str, Path]:
    """{"image": path, "audio": path} of the inputs given as files (for `video.check_output_path`, which must not
    overwrite them); an image or audio given in memory is only checked for its form. Each problem is an
    `InputError` naming the input."""
    from .face.images import check_image_file

    files = {}
    if isinstance(image, (str, Path)):
        files["image"] = check_image_file(image)
    if isinstance(audio, (str, Path)):
        files["audio"] = _existing_file(audio, "audio", "a speech recording (wav, mp3, m4a, ...)")
    elif not (isinstance(audio, tuple) and len(audio) == 2):
        raise InputError("audio must be a file path or a (waveform, sample_rate) pair", "audio")
    return files


def _existing_file(path: str | Path, name: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"{name} {str(path)!r} {reason}; give the path of {what}", name)
    return path
