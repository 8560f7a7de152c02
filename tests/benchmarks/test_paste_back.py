"""The paste-back benchmark runs each case in its own process and writes a complete result."""

from __future__ import annotations

import json
import shlex

import numpy as np


def test_small_paste_back_benchmark_writes_json_and_markdown(tmp_path) -> None:
    from benchmarks.paste_back import main

    assert main(["--width", "400", "--height", "300", "--cases", "paste:5:0,write:5:200",
                 "--out", str(tmp_path), "--name", "t"]) == 0
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["command"] == ("python -m benchmarks.paste_back --width 400 --height 300 "
                                 f"--cases paste:5:0,write:5:200 --out {shlex.quote(str(tmp_path))} --name t")
    assert result["machine"]["cpus"] >= 1 and result["machine"]["cpu_model"]
    assert {"numpy", "pillow", "av", "libavcodec", "torch"} <= result["versions"].keys()
    paste, write = result["cases"]
    assert (paste["what"], paste["frames"], paste["output"]) == ("paste", 5, [400, 300])
    assert (write["what"], write["frames"], write["output"]) == ("write", 5, [200, 150])
    assert paste["write_seconds"] is None and paste["mp4_bytes"] is None
    assert write["write_seconds"] > 0 and write["mp4_bytes"] > 0
    for case in (paste, write):
        assert case["photo"] == [400, 300] and case["crop_side"] > 0
        assert case["seconds"] > 0 and case["seconds_per_frame"] > 0 and case["paste_seconds"] > 0
        assert case["cpu_seconds"] > 0 and case["cpu_seconds_per_frame"] > 0
        assert 0 < case["rss_after_imports_mib"] < case["peak_rss_mib"]
        assert case["peak_over_imports_mib"] > 0 and case["loop_rise_mib"] > 0
        assert case["rss_after_imports_mib"] < case["loop_peak_rss_mib"] <= case["peak_rss_mib"]
    markdown = (tmp_path / "t.md").read_text()
    assert "| paste | 5 | 400x300 |" in markdown and "| paste + h264 | 5 | 200x150 |" in markdown
    assert result["command"] in markdown


def test_the_synthetic_photo_is_a_gradient_with_grain_and_the_frames_move() -> None:
    from benchmarks.paste_back import synthetic_frame, synthetic_photo

    photo = synthetic_photo(300, 200)
    assert photo.shape == (200, 300, 3) and photo.dtype == np.uint8
    assert photo[..., 0].mean(axis=0)[-10:].mean() > photo[..., 0].mean(axis=0)[:10].mean() + 100  # the gradient
    assert 2 < np.diff(photo[100, :, 1].astype(float)).std() < 20  # the grain
    view = photo[:64, :64].copy()
    rng = np.random.default_rng(0)
    first, second = synthetic_frame(view, 0, rng), synthetic_frame(view, 1, rng)
    assert first.shape == view.shape and first.dtype == np.uint8 and not np.array_equal(first, second)
