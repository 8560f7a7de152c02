"""Framing a photo around its face and pasting generated frames back (issue 11), on synthetic images
whose face boxes are known, so each crop box can be worked out by hand from the rules."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from hallo_pipeline.config import CROP_SCALE
from hallo_pipeline.errors import InputError
from hallo_pipeline.framing import (
    Framing,
    PasteBack,
    choose_framing,
    crop_to_size,
    crop_to_square,
    landmarks_in_crop,
    output_size,
)
from tests.conftest import REPO


def _smooth_photo(width: int, height: int) -> np.ndarray:
    """Slow colour waves in 40..200: resampling barely changes them, and a +-40 shift never clips."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [120 + 80 * np.sin(x / 37 + k) * np.cos(y / 29 - k) for k in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def _noise_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---- geometry: sizes only, no pixels ------------------------------------------------------------


@pytest.mark.parametrize(
    "face_box, width, height, scale, expected",
    [
        # portrait 3:4: side 2 x 60 = 120 around the centre (150, 180)
        ((120, 150, 180, 210), 300, 400, 2.0, (90, 120, 120)),
        # landscape 16:9: the longer (vertical) side 120 sets the square, 2.5 x 120 = 300
        ((900, 400, 1000, 520), 1920, 1080, 2.5, (800, 310, 300)),
        # square: round(2.3 x 100) = 230, start floor(250 - 115 + 0.5) = 135
        ((200, 200, 300, 300), 512, 512, 2.3, (135, 135, 230)),
        # a half-pixel start rounds up: 50.5 - 20 = 30.5 -> 31
        ((40, 40, 61, 61), 200, 200, 40 / 21, (31, 31, 40)),
    ],
    ids=["portrait-3x4", "landscape-16x9", "square", "half-pixel"],
)
def test_square_around_the_face(face_box, width, height, scale, expected) -> None:
    framing = choose_framing(face_box, width, height, scale)
    assert (framing.x0, framing.y0, framing.side) == expected
    assert (framing.width, framing.height, framing.crop_scale, framing.fill) == (width, height, scale, "edge")
    assert framing.padding == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "face_box, expected",
    [
        ((0, 200, 100, 300), (0, 150)),  # left: the square would start at -50, shifted to 0
        ((540, 200, 640, 300), (440, 150)),  # right: 490 shifted back to 640 - 200
        ((300, 0, 400, 100), (250, 0)),  # top
        ((300, 380, 400, 480), (250, 280)),  # bottom: 330 shifted back to 480 - 200
    ],
    ids=["left", "right", "top", "bottom"],
)
def test_face_on_a_border_is_shifted_in_not_padded(face_box, expected) -> None:
    framing = choose_framing(face_box, 640, 480, 2.0)
    assert (framing.x0, framing.y0, framing.side) == (*expected, 200)
    assert framing.padding == (0, 0, 0, 0)


def test_tiny_face_in_a_huge_photo() -> None:
    framing = choose_framing((3000, 2000, 3040, 2048), 6000, 4000, 2.3)
    side = round(2.3 * 48)  # 110.4 -> 110
    assert (framing.x0, framing.y0, framing.side) == (3020 - side // 2, 2024 - side // 2, side)
    corner = choose_framing((5990, 3990, 6000, 4000), 6000, 4000, 2.3)
    assert (corner.x0, corner.y0, corner.side) == (6000 - 23, 4000 - 23, 23)


def test_square_larger_than_the_photo_sticks_out() -> None:
    # Both axes: side 1.5 x 240 = 360 over a 200 x 100 photo, centred on the face (100, 50).
    framing = choose_framing((-20, -50, 220, 150), 200, 100, 1.5)
    assert (framing.x0, framing.y0, framing.side) == (-80, -130, 360)
    assert framing.padding == (80, 130, 80, 130)
    assert framing.visible == (0, 0, 200, 100)
    # One axis: side 120 over a 100-pixel height; the width still clamps as usual.
    wide = choose_framing((150, 20, 210, 80), 400, 100, 2.0)
    assert (wide.x0, wide.y0, wide.padding) == (120, -10, (0, 10, 0, 10))
    # Off-centre on the short axis: shifted only as far as covering the photo whole allows.
    high = choose_framing((150, 0, 210, 60), 400, 100, 2.0)
    assert (high.y0, high.padding) == (-20, (0, 20, 0, 0))


def test_default_crop_scale_is_the_measured_one() -> None:
    assert CROP_SCALE.default == 2.3
    assert choose_framing((0, 0, 100, 80), 1000, 1000).side == 230


# ---- crop ----------------------------------------------------------------------------------------


def test_crop_at_source_size_is_the_photo_itself() -> None:
    rgb = _noise_photo(300, 200)
    framing = choose_framing((100, 50, 160, 110), 300, 200, 2.0)
    np.testing.assert_array_equal(crop_to_square(rgb, framing, framing.side), rgb[20:140, 70:190])


def test_outside_the_photo_repeats_its_edge() -> None:
    rgb = _noise_photo(200, 100)
    framing = Framing(x0=-30, y0=-20, crop_width=160, crop_height=160, width=200, height=100)
    crop = crop_to_square(rgb, framing, 160)
    inside = rgb[0:100, 0:130]
    np.testing.assert_array_equal(crop[20:120, 30:160], inside)
    np.testing.assert_array_equal(crop[:20, 30:160], np.broadcast_to(inside[0], (20, 130, 3)))  # top
    np.testing.assert_array_equal(crop[120:, 30:160], np.broadcast_to(inside[-1], (40, 130, 3)))  # bottom
    np.testing.assert_array_equal(crop[:, :30], np.broadcast_to(crop[:, 30:31], (160, 30, 3)))  # left


def test_downscaled_crop_is_antialiased() -> None:
    checker = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)
    rgb = np.repeat(checker[..., None], 3, axis=-1)
    crop = crop_to_square(rgb, Framing(0, 0, 256, 256, 256, 256), 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - 128).max() <= 2  # a grey, not an aliased pattern of 0 and 255


# ---- paste-back ----------------------------------------------------------------------------------


def test_round_trip_at_source_size_is_exact() -> None:
    rgb = _noise_photo(320, 240)
    framing = choose_framing((130, 90, 190, 150), 320, 240, 2.0)
    paste = PasteBack(rgb, framing, color_match=False)
    np.testing.assert_array_equal(paste.paste(crop_to_square(rgb, framing, framing.side)), rgb)


def test_round_trip_through_the_working_size() -> None:
    """The crop at 256 pasted back into a 1000x700 photo: exact outside the crop (so outside the
    feather band too) and within 3 levels inside it, on a smooth photo (resampling twice)."""
    rgb = _smooth_photo(1000, 700)
    framing = choose_framing((420, 250, 560, 390), 1000, 700)  # side 322, inside the photo
    out = PasteBack(rgb, framing).paste(crop_to_square(rgb, framing, 256))
    x0, y0, x1, y1 = framing.box
    outside = np.ones((700, 1000), dtype=bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], rgb[outside])
    assert np.abs(out[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1]).max() <= 3


def test_feathered_edge_inside_the_photo_hard_edge_on_its_border() -> None:
    rgb = np.full((200, 300, 3), 255, dtype=np.uint8)
    framing = choose_framing((0, 60, 80, 140), 300, 200, 1.5)  # touches the left border
    assert framing.box == (0, 40, 120, 160)
    out = PasteBack(rgb, framing, feather=0.25, color_match=False).paste(np.zeros((64, 64, 3), np.uint8))
    row = out[100, :, 0].astype(int)  # across the middle: the crop from 0, band 30 px before x = 120
    assert row[0] == 0 and (row[:90] == 0).all()  # no ramp on the photo's border
    assert (np.diff(row[90:120]) > 0).all() and 0 < row[105] < 255  # a smooth rise over the band
    assert (row[120:] == 255).all()
    column = out[:, 60, 0].astype(int)  # top and bottom edges lie inside the photo: both ramp
    assert (column[:40] == 255).all() and (column[70:130] == 0).all() and (column[160:] == 255).all()
    assert 0 < column[55] < 255 and 0 < column[145] < 255


def test_feather_weight_is_the_product_of_the_edge_ramps_corners_included() -> None:
    """The frame is copied where the mask is 1 and blended in the band (strip by strip); every pixel of
    the crop, corners too, weighs the frame by its row's ramp times its column's ramp."""
    rgb = np.full((300, 400, 3), 255, dtype=np.uint8)
    framing = choose_framing((150, 100, 250, 200), 400, 300, 2.0)
    assert framing.box == (100, 50, 300, 250)  # inside the photo: all four edges ramp, over 40 px
    out = PasteBack(rgb, framing, feather=0.2, color_match=False).paste(np.zeros((50, 50, 3), np.uint8))
    x0, y0, x1, y1 = framing.box
    weight = 1 - out[y0:y1, x0:x1, 0] / 255  # of the (black) frame over the (white) photo
    rows, cols = weight[:, 100], weight[100, :]  # through the centre, where the other axis weighs 1
    assert (weight[40:160, 40:160] == 1).all() and 0.1 < weight[20, 20] < 0.5
    np.testing.assert_allclose(weight, rows[:, None] * cols[None, :], atol=2 / 255)
    outside = np.ones((300, 400), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert (out[outside] == 255).all()


def test_colour_match_is_fixed_by_the_first_frame() -> None:
    rgb = _smooth_photo(400, 300)
    framing = choose_framing((150, 100, 250, 200), 400, 300, 2.0)
    crop = crop_to_square(rgb, framing, framing.side).astype(np.float64)
    tinted = np.round(crop * 0.8 + 20).astype(np.uint8)  # the model's colours: gain 1.25 undoes it
    paste = PasteBack(rgb, framing, feather=0.0)
    x0, y0, x1, y1 = framing.box
    first = paste.paste(tinted)[y0:y1, x0:x1].astype(int)
    assert np.abs(first - rgb[y0:y1, x0:x1]).max() <= 2
    # A brighter second frame keeps the first frame's correction: 24 levels x 1.25 = 30 brighter.
    second = paste.paste(tinted + np.uint8(24))[y0:y1, x0:x1].astype(int)
    assert abs((second - rgb[y0:y1, x0:x1]).mean() - 30) < 1.0
    # Without the match the tint comes through as it is.
    plain = PasteBack(rgb, framing, feather=0.0, color_match=False).paste(tinted)[y0:y1, x0:x1]
    assert np.abs(plain.astype(int) - rgb[y0:y1, x0:x1]).max() > 10


def test_float_frames_are_accepted() -> None:
    rgb = _noise_photo(160, 120)
    framing = choose_framing((60, 40, 100, 80), 160, 120, 2.0)
    crop = crop_to_square(rgb, framing, framing.side)
    paste = PasteBack(rgb, framing, color_match=False)
    np.testing.assert_array_equal(paste.paste(crop.astype(np.float32) / 255), rgb)


def test_each_frame_is_a_new_image() -> None:
    rgb = _noise_photo(160, 120)
    paste = PasteBack(rgb, choose_framing((60, 40, 100, 80), 160, 120, 2.0))
    first = paste.paste(np.zeros((32, 32, 3), np.uint8))
    first[:] = 7  # a caller writing into one output must not change the next
    assert not (paste.paste(np.zeros((32, 32, 3), np.uint8)) == 7).all()


@pytest.mark.parametrize(
    "width, height, max_side, expected",
    [
        (6000, 4000, 0, (6000, 4000)),
        (6000, 4000, 1000, (1000, 666)),
        (4000, 6000, 1000, (666, 1000)),
        (6000, 4000, 999, (998, 666)),
        (641, 479, 0, (640, 478)),
        (641, 479, 5000, (640, 478)),
    ],
)
def test_output_size_is_capped_and_even(width, height, max_side, expected) -> None:
    assert output_size(width, height, max_side) == expected


def test_odd_photo_loses_a_row_and_column_not_its_pixels() -> None:
    rgb = _noise_photo(161, 121)
    framing = choose_framing((60, 40, 100, 80), 161, 121, 2.0)
    out = PasteBack(rgb, framing, color_match=False).paste(crop_to_square(rgb, framing, framing.side))
    np.testing.assert_array_equal(out, rgb[:120, :160])


def test_capped_output_is_the_photo_scaled() -> None:
    rgb = _smooth_photo(700, 500)
    framing = choose_framing((300, 200, 380, 280), 700, 500)
    out = PasteBack(rgb, framing, max_side=301).paste(crop_to_square(rgb, framing, 128))
    assert out.shape == (214, 300, 3)  # 500 x 301 / 700 = 215 -> 214 (even)
    from PIL import Image

    expected = np.asarray(Image.fromarray(rgb).resize((300, 214), Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(out.astype(int) - expected).max() <= 4


# ---- rectangles (a working size of another aspect, e.g. Hallo3's 720 x 480) ----------------------------


@pytest.mark.parametrize(
    "face_box, width, height, scale, aspect, expected",
    [
        # 3:2 in 16:9: the shorter side (height) 2.5 x 120 = 300, width 450, centred on (950, 460)
        ((900, 400, 1000, 520), 1920, 1080, 2.5, Fraction(3, 2), (725, 310, 450, 300)),
        # the same as a float: the same numbers (300 is even, so the Fraction needs no rounding either)
        ((900, 400, 1000, 520), 1920, 1080, 2.5, 1.5, (725, 310, 450, 300)),
        # 3:2 with an odd shorter side: 2 x 50.5 = 101 rounds to 50 units of 2: 100 high, 150 wide
        ((100, 100, 150.5, 150), 400, 400, 2.0, Fraction(3, 2), (50, 75, 150, 100)),
        # the float rounds each side on its own: height 101, width round(151.5) = 152
        ((100, 100, 150.5, 150), 400, 400, 2.0, 1.5, (49, 75, 152, 101)),
        # portrait 3:4: the width is the shorter side, 2 x 60 = 120 (40 units of 3), height 160
        ((120, 150, 180, 210), 300, 400, 2.0, Fraction(3, 4), (90, 100, 120, 160)),
        # 16:9 as a float: height round(2.3 x 100) = 230, width round(230 x 16 / 9) = 409
        ((200, 200, 300, 300), 1000, 1000, 2.3, 16 / 9, (46, 135, 409, 230)),
    ],
    ids=["3x2-in-16x9", "3x2-float", "3x2-odd", "3x2-odd-float", "3x4", "16x9-float"],
)
def test_rectangle_around_the_face(face_box, width, height, scale, aspect, expected) -> None:
    framing = choose_framing(face_box, width, height, scale, aspect)
    assert (framing.x0, framing.y0, framing.crop_width, framing.crop_height) == expected
    assert (framing.width, framing.height, framing.crop_scale) == (width, height, scale)
    assert framing.crop_size == expected[:1:-1] and not framing.is_square
    with pytest.raises(ValueError, match="not square"):
        framing.side  # noqa: B018 - Hallo's square-only property must not guess a side


def test_a_fraction_gives_the_exact_ratio() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        x0, y0, w, h = rng.uniform(0, 500, 4) + 1
        aspect = Fraction(int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        framing = choose_framing((x0, y0, x0 + w, y0 + h), 800, 600, float(rng.uniform(1, 6)), aspect)
        assert Fraction(framing.crop_width, framing.crop_height) == aspect
        # the shorter side is crop_scale x the box's longer side, give or take half a unit of the ratio
        unit = aspect.denominator if aspect > 1 else aspect.numerator
        assert abs(min(framing.crop_size) - framing.crop_scale * max(w, h)) <= max(unit / 2, unit - 1) + 1e-9


def test_a_square_aspect_is_hallos_square() -> None:
    for aspect in (1, 1.0, Fraction(1)):
        framing = choose_framing((200, 200, 300, 300), 512, 512, 2.3, aspect)
        assert (framing.x0, framing.y0, framing.side, framing.is_square) == (135, 135, 230, True)
    assert Framing.square(3, 4, 50, 100, 80) == Framing(3, 4, 50, 50, 100, 80)


def test_wide_crop_of_a_tall_photo_sticks_out_on_both_sides() -> None:
    # 3:2 around a face filling a 3:4 photo's width: 1.0 x 120 high, so 180 wide in a 150-wide photo
    framing = choose_framing((20, 60, 130, 180), 150, 200, 1.0, Fraction(3, 2))
    assert (framing.crop_width, framing.crop_height) == (180, 120)
    assert framing.padding == (15, 0, 15, 0) and framing.visible == (0, 60, 150, 180)


def test_rectangle_at_source_size_is_the_photo_itself() -> None:
    rgb = _noise_photo(300, 200)
    framing = choose_framing((100, 50, 160, 110), 300, 200, 2.0, Fraction(3, 2))
    assert framing.box == (40, 20, 220, 140)
    np.testing.assert_array_equal(crop_to_size(rgb, framing, framing.crop_size), rgb[20:140, 40:220])


def test_rectangle_outside_the_photo_repeats_its_edge() -> None:
    rgb = _noise_photo(150, 200)
    framing = choose_framing((20, 60, 130, 180), 150, 200, 1.0, Fraction(3, 2))  # 15 px out left and right
    crop = crop_to_size(rgb, framing, framing.crop_size)
    np.testing.assert_array_equal(crop[:, 15:165], rgb[60:180])
    np.testing.assert_array_equal(crop[:, :15], np.broadcast_to(rgb[60:180, :1], (120, 15, 3)))
    np.testing.assert_array_equal(crop[:, 165:], np.broadcast_to(rgb[60:180, -1:], (120, 15, 3)))


def test_landmarks_follow_the_rectangle() -> None:
    framing = Framing(x0=-10, y0=20, crop_width=150, crop_height=100, width=200, height=300)
    points = np.array([[-10, 20], [140, 120], [65, 70]], dtype=np.float64)
    moved = landmarks_in_crop(points, framing, (64, 96))  # (height, width): 0.64 x the crop on both axes
    np.testing.assert_allclose(moved, [[0, 0], [96, 64], [48, 32]])
    square = Framing.square(-10, 20, 100, 200, 300)
    np.testing.assert_allclose(landmarks_in_crop(points, square, 50), landmarks_in_crop(points, square, (50, 50)))


def test_rectangle_round_trip_at_source_size_is_exact() -> None:
    rgb = _noise_photo(320, 240)
    framing = choose_framing((130, 90, 190, 150), 320, 240, 2.0, Fraction(3, 2))
    paste = PasteBack(rgb, framing, color_match=False)
    np.testing.assert_array_equal(paste.paste(crop_to_size(rgb, framing, framing.crop_size)), rgb)


@pytest.mark.parametrize("aspect", [Fraction(3, 2), Fraction(2, 3)], ids=["wide", "tall"])
def test_rectangle_round_trip_through_the_working_size(aspect) -> None:
    """A 3:2 (or 2:3) crop at a small working size pasted back: the photo exactly outside the crop, within
    3 levels inside it (resampled twice, on a smooth photo), and the colours matched."""
    rgb = _smooth_photo(1000, 700)
    framing = choose_framing((420, 250, 560, 390), 1000, 700, 2.3, aspect)
    assert framing.visible == framing.box  # inside the photo
    working = (96, 144) if aspect > 1 else (144, 96)
    out = PasteBack(rgb, framing).paste(crop_to_size(rgb, framing, working))
    x0, y0, x1, y1 = framing.box
    outside = np.ones((700, 1000), dtype=bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], rgb[outside])
    assert np.abs(out[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1]).max() <= 3


def test_rectangle_feather_is_a_fraction_of_its_shorter_side() -> None:
    rgb = np.full((400, 600, 3), 255, dtype=np.uint8)
    framing = choose_framing((250, 150, 350, 250), 600, 400, 2.0, Fraction(3, 2))
    assert framing.box == (150, 100, 450, 300)  # 300 x 200, inside the photo: all four edges ramp
    out = PasteBack(rgb, framing, feather=0.1, color_match=False).paste(np.zeros((20, 30, 3), np.uint8))
    row, column = out[200, :, 0].astype(int), out[:, 300, 0].astype(int)
    # a band of 0.1 x 200 = 20 px on every edge, the long ones included
    for line, start, stop in ((row, 150, 450), (column, 100, 300)):
        assert (line[:start] == 255).all() and (line[stop:] == 255).all()
        assert (line[start + 20 : stop - 20] == 0).all()
        assert 0 < line[start + 10] < 255 and 0 < line[stop - 10] < 255
        assert line[start + 19] <= 1 and line[start + 21] == 0


def test_frames_of_another_shape_are_refused() -> None:
    rgb = _noise_photo(300, 200)
    framing = choose_framing((100, 50, 160, 110), 300, 200, 2.0, Fraction(3, 2))
    paste = PasteBack(rgb, framing, color_match=False)
    assert paste.paste(np.zeros((480, 720, 3), np.uint8)).shape == (200, 300, 3)  # 3:2 at any size
    assert paste.paste(np.zeros((33, 49, 3), np.uint8)).shape == (200, 300, 3)  # a pixel of rounding
    with pytest.raises(InputError, match="does not fit this crop") as error:
        paste.paste(np.zeros((64, 64, 3), np.uint8))  # a square frame (Hallo's) into Hallo3's crop
    assert error.value.input == "frame"


@pytest.mark.parametrize("aspect", [0, -1.5, math.nan, math.inf, "3:2", True])
def test_bad_aspect(aspect) -> None:
    with pytest.raises(InputError, match="aspect") as error:
        choose_framing((0, 0, 10, 10), 100, 100, 2.0, aspect)
    assert error.value.input == "aspect"


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.5, 7.0, "2", True])
def test_bad_crop_scale(value) -> None:
    with pytest.raises(InputError, match="crop_scale") as error:
        choose_framing((0, 0, 10, 10), 100, 100, value)
    assert error.value.input == "crop_scale"


@pytest.mark.parametrize("box", [(0, 0, math.nan, 10), (10, 0, 10, 10), (0, 0, 10)])
def test_bad_face_box(box) -> None:
    with pytest.raises(InputError) as error:
        choose_framing(box, 100, 100)
    assert error.value.input == "face_box"


@pytest.mark.parametrize(
    "option, value",
    [
        ("feather", math.nan),
        ("feather", -0.1),
        ("feather", 0.6),
        ("max_side", -1),
        ("max_side", 1.5),
        ("max_side", 8),
        ("max_side", math.inf),
        ("color_match", "yes"),
    ],
)
def test_bad_paste_options(option, value) -> None:
    rgb = _noise_photo(100, 100)
    with pytest.raises(InputError, match=option) as error:
        PasteBack(rgb, choose_framing((40, 40, 60, 60), 100, 100), **{option: value})
    assert error.value.input == option


@pytest.mark.parametrize(
    "frame",
    [np.zeros((32, 48, 3), np.uint8), np.zeros((32, 32), np.uint8), np.full((32, 32, 3), np.nan, np.float32)],
    ids=["not-square", "grey", "nan"],
)
def test_bad_frames(frame) -> None:
    rgb = _noise_photo(100, 100)
    paste = PasteBack(rgb, choose_framing((40, 40, 60, 60), 100, 100))
    with pytest.raises(InputError) as error:
        paste.paste(frame)
    assert error.value.input == "frame"


def test_photo_must_match_the_framing() -> None:
    framing = choose_framing((40, 40, 60, 60), 100, 100)
    with pytest.raises(InputError, match=r"\(100, 100, 3\)"):
        crop_to_square(_noise_photo(120, 100), framing, 64)


def test_import_is_light() -> None:
    code = "import sys, hallo_pipeline.framing; print([m for m in ('torch', 'cv2', 'PIL') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
