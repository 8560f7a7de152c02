"""The README's framing picture: a photo in, what the model sees, the same photo out (issue #11).

    python -m benchmarks.before_after                 # -> web/docs/framing.jpg

Left, a 3:4 portrait cut from the astronaut test photo (tests/data/astronaut.jpg, NASA, public domain)
with the square crop drawn on it, framed as the pipeline frames it (mediapipe's face mesh, the face
oval's box x the default crop scale). Middle, what the model sees: that crop at 512x512 and, below,
what the release's `stretch` framing sees (the whole photo squeezed to 512x512). Right, one frame
pasted back into the photo at its own size by `PasteBack`.

No model runs here, so the pasted frame is a stand-in and is marked as one: the crop itself, tinted
and labelled, pasted with colour matching off (it would undo the tint). The tint shows where the frame
lands and how its feathered edge blends; it is not what a generated frame looks like.
Needs mediapipe (the face mesh ships in the mediapipe 0.10.21 wheel) and Pillow with FreeType.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hallo_pipeline.config import CROP_SCALE

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "tests" / "data" / "astronaut.jpg"
OUTPUT = REPO / "web" / "docs" / "framing.jpg"
JPEG_QUALITY = 85  # about 100 KB: small enough to commit
PHOTO_BOX = (32, 0, 416, 512)  # left, top, right, bottom in the 512x512 astronaut: 384x512, 3:4, face centred
MODEL_SIZE = 512
TINT = np.array([0.70, 0.95, 1.25])  # per channel: a cool cast nobody would take for the photo's colours
CROP_COLOUR = (255, 220, 0)

WIDTH = 960
PHOTO_HEIGHT = 400  # the left and right panels; the two middle squares share this height
GAP, MARGIN, LABEL = 28, 16, 42  # between panels, around the picture, text under each panel
BACKGROUND, TEXT = (255, 255, 255), (20, 20, 20)


def stand_in_frame(view: np.ndarray) -> np.ndarray:
    """The model's view, tinted and labelled: a stand-in for a generated frame, never mistaken for one."""
    tinted = np.clip(view.astype(np.float32) * TINT, 0, 255).astype(np.uint8)
    image = Image.fromarray(tinted)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=36)
    text = "stand-in frame"
    position = ((image.width - draw.textlength(text, font=font)) / 2, image.height - 90)
    x0, y0, x1, y1 = draw.textbbox(position, text, font=font)
    draw.rectangle((x0 - 10, y0 - 6, x1 + 10, y1 + 6), fill=(0, 0, 0))
    draw.text(position, text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def panels(photo: np.ndarray) -> dict[str, np.ndarray | tuple]:
    """The four pictures, at full resolution, and the crop box."""
    from hallo_pipeline.face.landmarks import LandmarkDetector, choose_face
    from hallo_pipeline.framing import PasteBack, crop_to_square, frame_face

    height, width = photo.shape[:2]
    landmarks = choose_face(LandmarkDetector().detect(photo))
    framing = frame_face(landmarks, width, height)
    view = crop_to_square(photo, framing, MODEL_SIZE)
    # The release's framing: the whole photo resized to the square, as face.images.reference_tensor does.
    stretched = np.asarray(Image.fromarray(photo).resize((MODEL_SIZE, MODEL_SIZE), Image.Resampling.BILINEAR))
    pasted = PasteBack(photo, framing, color_match=False).paste(stand_in_frame(view))
    return {"photo": photo, "box": framing.box, "view": view, "stretched": stretched, "pasted": pasted}


def _fit(pixels: np.ndarray, height: int) -> Image.Image:
    image = Image.fromarray(pixels)
    return image.resize((round(image.width * height / image.height), height), Image.Resampling.LANCZOS)


def _label(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, lines: list[str], font) -> None:
    for i, line in enumerate(lines):
        length = draw.textlength(line, font=font)
        draw.text((x + (width - length) / 2, y + 4 + 17 * i), line, fill=TEXT, font=font)


def _arrow(draw: ImageDraw.ImageDraw, x0: int, x1: int, y: int) -> None:
    draw.line((x0 + 4, y, x1 - 4, y), fill=TEXT, width=2)
    draw.polygon([(x1 - 4, y), (x1 - 12, y - 5), (x1 - 12, y + 5)], fill=TEXT)


def compose(parts: dict) -> Image.Image:
    """Photo with its crop square | the two model views, stacked | the pasted frame; a label under each."""
    photo, pasted, (bx0, by0, bx1, by1) = parts["photo"], parts["pasted"], parts["box"]
    square = (PHOTO_HEIGHT - LABEL) // 2
    left, right = _fit(photo, PHOTO_HEIGHT), _fit(pasted, PHOTO_HEIGHT)
    view, stretched = _fit(parts["view"], square), _fit(parts["stretched"], square)
    gap = (WIDTH - 2 * MARGIN - left.width - square - right.width) // 2
    canvas = Image.new("RGB", (WIDTH, MARGIN * 2 + PHOTO_HEIGHT + LABEL), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    model = f"{MODEL_SIZE}x{MODEL_SIZE}"

    x = MARGIN
    canvas.paste(left, (x, MARGIN))
    s = PHOTO_HEIGHT / photo.shape[0]
    draw.rectangle((x + bx0 * s, MARGIN + by0 * s, x + bx1 * s - 1, MARGIN + by1 * s - 1), outline=CROP_COLOUR,
                   width=3)
    _label(draw, x, MARGIN + PHOTO_HEIGHT, left.width, [
        f"input photo, {photo.shape[1]}x{photo.shape[0]} (3:4)",
        f"square: {CROP_SCALE.default:g} x the face (crop)",
    ], font)

    x_mid = x + left.width + gap
    _arrow(draw, x + left.width, x_mid, MARGIN + square // 2)
    canvas.paste(view, (x_mid, MARGIN))
    _label(draw, x_mid - 40, MARGIN + square, square + 80, [f"model sees (crop), {model}"], font)
    y_low = MARGIN + square + LABEL
    canvas.paste(stretched, (x_mid, y_low))
    _label(draw, x_mid - 40, y_low + square, square + 80, [
        "for comparison, the release's 'stretch':",
        f"whole photo squeezed, {model}",
    ], font)

    x_right = x_mid + square + gap
    _arrow(draw, x_mid + square, x_right, MARGIN + square // 2)
    canvas.paste(right, (x_right, MARGIN))
    _label(draw, x_right, MARGIN + PHOTO_HEIGHT, right.width, [
        f"output, {pasted.shape[1]}x{pasted.shape[0]}: one frame pasted back",
        "(a stand-in: the tinted crop, no model ran)",
    ], font)
    return canvas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with Image.open(ASTRONAUT) as image:
        photo = np.asarray(image.convert("RGB").crop(PHOTO_BOX))
    picture = compose(panels(photo))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out, quality=JPEG_QUALITY, optimize=True)
    print(f"{args.out}: {picture.width}x{picture.height}, {args.out.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
