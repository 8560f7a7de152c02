import re

import numpy as np
import pytest
import torch

from hallo_pipeline.errors import InputError
from hallo_pipeline.video import (
    OutputPlan,
    VideoWriter,
    check_output_path,
    read_video_info,
)


def _tone(seconds: float, sr: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.3 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("sr,channels", [(16000, 1), (44100, 2), (37000, 3)])
def test_mp4_has_h264_aac_and_audio_cut_to_video(tmp_path, sr, channels) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25, audio=_tone(2.0, sr, channels), sample_rate=sr) as writer:
        writer.write(torch.rand(7, 3, 32, 48))
        writer.write(torch.rand(6, 3, 32, 48))
    info = read_video_info(path)
    assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
    assert info["fps"] == 25 and info["frames"] == 13
    assert (info["width"], info["height"]) == (48, 32)
    # the audio is cut to 13 / 25 s; AAC pads its last 1024-sample frame
    assert 13 / 25 <= info["audio_seconds"] <= 13 / 25 + 1024 / info["sample_rate"] + 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_pixels_survive_encoding(tmp_path) -> None:
    frames = torch.zeros(3, 3, 32, 32)
    frames[:, 0, :, :16] = 1.0  # left half red, right half black
    with VideoWriter(tmp_path / "a.mp4") as writer:
        writer.write(frames)
    import av

    with av.open(str(tmp_path / "a.mp4")) as c:
        rgb = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert rgb[:, :12, 0].mean() > 230 and rgb[:, 20:, 0].mean() < 25


def test_failed_run_leaves_no_file(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="cancelled"):
        with VideoWriter(tmp_path / "b.mp4", audio=_tone(1, 16000, 1), sample_rate=16000) as writer:
            # The encoder holds back its first frames (about 40 with x264's lookahead): the partial file
            # only appears once packets are muxed, so write until it is on disk, then fail.
            for _ in range(200):
                writer.write(torch.rand(1, 3, 16, 16))
                if any(tmp_path.iterdir()):
                    break
            assert any(tmp_path.iterdir()), "the partial file never appeared, so its removal is not tested"
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []


def test_odd_size_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="even frame sizes"):
        with VideoWriter(tmp_path / "c.mp4") as writer:
            writer.write(torch.rand(1, 3, 15, 16))


# ---------------------------------------------------------------------------------------------
# the output path: checked before any work, never an input, never a folder, a known ending
# ---------------------------------------------------------------------------------------------
def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".partial") or p.suffix == ".mp4")


def test_tilde_is_the_home_folder_not_a_folder_named_tilde(tmp_path, monkeypatch) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "cwd")
    with VideoWriter("~/x.mp4") as writer:
        writer.write(torch.rand(2, 3, 16, 16))
    assert (tmp_path / "home" / "x.mp4").is_file()
    assert list((tmp_path / "cwd").iterdir()) == []
    assert check_output_path("~/x.mp4").path == tmp_path / "home" / "x.mp4"


def _inputs(tmp_path) -> dict:
    (tmp_path / "speech.wav").write_bytes(b"RIFF my only recording")
    (tmp_path / "face.png").write_bytes(b"\x89PNG portrait")
    return {"image": tmp_path / "face.png", "audio": tmp_path / "speech.wav"}


def test_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path) -> None:
    inputs = _inputs(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.mp4").symlink_to(tmp_path / "speech.wav")
    (tmp_path / "linked_dir").symlink_to(tmp_path)
    for output in (tmp_path / "speech.wav", tmp_path / "sub" / ".." / "speech.wav", tmp_path / "link.mp4",
                   tmp_path / "linked_dir" / "speech.wav"):
        with pytest.raises(InputError, match=r"output '.*' is the audio file '.*speech.wav'; writing the video "
                                             r"there would destroy the audio\. Choose another output name"):
            check_output_path(output, inputs)
    with pytest.raises(InputError, match=r"is the image file .* e\.g\. '.*face\.mp4'"):
        VideoWriter(tmp_path / "face.png", inputs=inputs)
    assert (tmp_path / "speech.wav").read_bytes() == b"RIFF my only recording"
    assert (tmp_path / "face.png").read_bytes() == b"\x89PNG portrait"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_folder_is_refused_when_the_writer_opens_not_after_the_run(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match=r"output '.*out' is a folder; give a file name inside it, e\.g\. "
                                         r"'.*out/result\.mp4'"):
        VideoWriter(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


@pytest.mark.parametrize("name,suggestion", [("clip.gif", "clip.mp4"), ("clip.webm", "clip.mp4"), ("clip", "clip.mp4")])
def test_an_ending_the_codecs_do_not_fit_is_refused_with_the_mp4_name(tmp_path, name, suggestion) -> None:
    with pytest.raises(InputError, match=rf"output '.*{name}' (ends in '\.\w+'|has no file ending), but the video "
                                         rf"is written as h264 \+ AAC, which needs \.mp4 \(or \.mov, \.mkv\); "
                                         rf"use '.*/{suggestion}'"):
        VideoWriter(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,container", [("a.MP4", "mov,mp4"), ("a.mov", "mov,mp4"), ("a.mkv", "matroska")])
def test_mp4_in_any_case_mov_and_mkv_are_written_as_what_they_say(tmp_path, name, container) -> None:
    import av

    with VideoWriter(tmp_path / name, audio=_tone(1.0, 16000, 1), sample_rate=16000) as writer:
        writer.write(torch.rand(4, 3, 32, 32))
    with av.open(str(tmp_path / name)) as c:
        assert c.format.name.startswith(container)
    info = read_video_info(tmp_path / name)
    assert (info["video_codec"], info["audio_codec"], info["frames"]) == ("h264", "aac", 4)


def test_a_file_where_the_folder_should_be_is_refused_up_front(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for output in (tmp_path / "notes.txt" / "o.mp4", tmp_path / "notes.txt" / "deeper" / "o.mp4"):
        with pytest.raises(InputError, match=r"output '.*o\.mp4' cannot be written: '.*notes\.txt' is a file, "
                                             r"not a folder; choose an output in a folder"):
            VideoWriter(output)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_read_only_file_system_is_refused_up_front(tmp_path, monkeypatch) -> None:
    import errno
    import os

    real_open = os.open

    def read_only(path, *args, **kwargs):  # what the kernel says on a ro mount, even to root
        if str(path).endswith(".partial"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(InputError, match=rf"output '.*o\.mp4' cannot be written: the folder '{tmp_path}/new' is on "
                                         r"a read-only file system; choose an output in a folder you can write to"):
        VideoWriter(tmp_path / "new" / "o.mp4")
    assert list(tmp_path.iterdir()) == []  # the folder made for the try is gone again


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root may write into read-only folders")
def test_a_folder_without_write_permission_is_refused_up_front(tmp_path) -> None:
    (tmp_path / "locked").mkdir(mode=0o555)
    with pytest.raises(InputError, match=r"no permission to create files in the folder '.*locked'"):
        VideoWriter(tmp_path / "locked" / "o.mp4")


def test_missing_folders_are_made_by_the_writer_not_by_the_check(tmp_path) -> None:
    plan = check_output_path(tmp_path / "a" / "b" / "o.mp4")
    assert plan == OutputPlan(tmp_path / "a" / "b" / "o.mp4", replaces_existing=False)
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(tmp_path / "a" / "b" / "o.mp4") as writer:
        writer.write(torch.rand(1, 3, 16, 16))
    assert (tmp_path / "a" / "b" / "o.mp4").is_file()


def test_replacing_another_file_is_allowed_and_said(tmp_path) -> None:
    (tmp_path / "old.mp4").write_bytes(b"yesterday's video")
    assert check_output_path(tmp_path / "old.mp4").replaces_existing
    assert not check_output_path(tmp_path / "new.mp4").replaces_existing
    with VideoWriter(tmp_path / "old.mp4") as writer:
        assert writer.replaces_existing
        writer.write(torch.rand(2, 3, 16, 16))
    assert read_video_info(tmp_path / "old.mp4")["frames"] == 2


def test_a_failed_rename_leaves_no_partial_file_and_says_why(tmp_path, monkeypatch) -> None:
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    writer = VideoWriter(tmp_path / "o.mp4", audio=_tone(1.0, 16000, 1), sample_rate=16000)
    writer.write(torch.rand(2, 3, 16, 16))
    with pytest.raises(InputError, match=r"output '.*o\.mp4': the finished video could not be given its name "
                                         r"\(Permission denied\); nothing was written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# reproducible bytes
# ---------------------------------------------------------------------------------------------
def _noisy_frames(n: int = 30, size: int = 128) -> np.ndarray:
    """A gradient with noise: the encoder has real decisions to make (motion, B-frames, rate)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 180, size)[None, :, None]
    frames = ramp + np.arange(n)[:, None, None, None] * 2 + rng.normal(0, 20, (n, size, size, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def _encode(path, frames) -> bytes:
    with VideoWriter(path, audio=_tone(2.0, 44100, 2), sample_rate=44100) as writer:
        writer.write(frames[:11])  # clip-sized pieces, as the pipeline writes them
        writer.write(frames[11:])
    return path.read_bytes()


@pytest.mark.parametrize("ending", [".mp4", ".mkv"])
def test_same_frames_and_audio_give_the_same_bytes(tmp_path, ending) -> None:
    frames = _noisy_frames()
    first = _encode(tmp_path / f"a{ending}", frames)
    assert _encode(tmp_path / f"b{ending}", frames) == first
    assert not re.search(rb"Lav[fc]\d", first)  # no FFmpeg version strings (they change with every build)


def test_the_bytes_do_not_depend_on_the_number_of_cpus(tmp_path) -> None:
    import os

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a machine where this process may use 2 CPUs or more")
    frames = _noisy_frames()
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})  # a one-CPU container or `taskset -c 0`
    try:
        one_cpu = _encode(tmp_path / "one.mp4", frames)
    finally:
        os.sched_setaffinity(0, everywhere)
    assert _encode(tmp_path / "all.mp4", frames) == one_cpu
