"""The README's framing picture is made from the test photo, small enough to commit, and its pasted frame
changes the photo only inside the crop square."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def test_the_framing_picture(tmp_path) -> None:
    mp = pytest.importorskip("mediapipe")
    if not hasattr(getattr(mp, "solutions", None), "face_mesh"):
        pytest.skip("this mediapipe has no built-in face mesh")
    from benchmarks.before_after import ASTRONAUT, JPEG_QUALITY, PHOTO_BOX, WIDTH, compose, panels

    with Image.open(ASTRONAUT) as image:
        photo = np.asarray(image.convert("RGB").crop(PHOTO_BOX))
    parts = panels(photo)
    x0, y0, x1, y1 = parts["box"]
    assert 0 <= x0 and x1 <= photo.shape[1] and 0 <= y0 and y1 <= photo.shape[0]  # the square fits this photo
    assert parts["view"].shape == parts["stretched"].shape == (512, 512, 3)
    assert parts["pasted"].shape == photo.shape
    outside = np.ones(photo.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(parts["pasted"][outside], photo[outside])
    assert np.abs(parts["pasted"][y0:y1, x0:x1].astype(int) - photo[y0:y1, x0:x1]).mean() > 10  # the tint shows

    out = tmp_path / "framing.jpg"
    compose(parts).save(out, quality=JPEG_QUALITY, optimize=True)
    with Image.open(out) as picture:
        assert picture.width == WIDTH
    assert out.stat().st_size < 150 * 1024
