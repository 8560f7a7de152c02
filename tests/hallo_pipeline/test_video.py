import numpy as np
import pytest
import torch

from hallo_pipeline.video import VideoWriter, read_video_info


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
