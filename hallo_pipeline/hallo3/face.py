"""One portrait analysed for Hallo3 (SPEC §9), framed the way Hallo frames its portraits (`framing.py`).

    face = analyze_face(finder, rgb, config)              # framing="crop": a rectangle around the face
    face.portrait                                         # PreparedPortrait: what the model is given
    paste = face.paste_back(max_side=1920)                # generated frames -> the whole photo, moving
    for frame in face.video_frames(segment.frames):
        writer.write(paste.paste(frame)[None])

framing "crop" (the default): a rectangle of the weights' working aspect (720:480 for the release), its shorter side
`crop_scale` x the face, is cut from the photo at the photo's own resolution (at most `CUT_LIMIT` x the working
size; edge fill where it leaves the photo, as Hallo's square). The release's preprocessing (`prepare_portrait`)
then runs on that cut as if it were the photo, with the landmarks moved into it (not detected a second time), and
the identity embedding is taken from it too (as Hallo's crop does: the face centred and large, a neighbour mostly
cut away). Since the cut has the working aspect exactly, the release's cover crop removes nothing, and every
generated frame is the cut, moving: it is pasted back where the cut came from.
framing "stretch": the release's geometry on the whole photo (a cover crop; a square photo padded and the frames
cropped back); the frames are the video, there is nothing to paste back.

`analyze_face` is the one code path: `Hallo3Generator.prepare` uses it, and so do the nodes (through
`Hallo3Pipeline.analyze_face`), which keep the `Hallo3Face` between the face node and the paste-back node.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import CROP_SCALE, FEATHER, MAX_SIDE
from ..errors import InputError
from ..face.previews import FacePreviews
from ..framing import Framing, PasteBack, check_framing_mode, crop_to_size, frame_face, landmarks_in_crop
from .preprocess import FACE_BOX_EXPAND_RATIO, PreparedPortrait, frames_to_uint8, prepare_portrait, working_coordinates

if TYPE_CHECKING:
    from ..face.finder import FaceFinder
    from .config import Hallo3Config

# The cut is taken at the photo's own pixels up to this many times the working size; past it, it is resampled to
# that size first. The release's antialiased resize from twice the working size looks the same as from ten times,
# and a crop around a large face in a large photo (a 4000 x 3000 selfie: a crop about 9000 px wide, mostly edge
# fill) would otherwise become float tensors of a gigabyte each.
CUT_LIMIT = 2


@dataclass(frozen=True, eq=False)
class Hallo3Face:
    """A photo's face as Hallo3 uses it: the model's inputs, and where its frames go back into the photo."""

    photo: np.ndarray  # (h, w, 3) uint8 RGB: the user's photo (what frames are pasted into)
    framing: Framing | None  # the rectangle around the face; None: framing "stretch", the whole photo
    landmarks: np.ndarray  # (478, 2) float64 pixels of the working image (x, y)
    embedding: torch.Tensor  # (512,) float32 raw identity embedding; zeros if allowed and no face was recognised
    portrait: PreparedPortrait  # image and face-box reference at the working size, the box and mask of the cut

    @property
    def working_size(self) -> tuple[int, int]:
        return self.portrait.working_size

    def previews(self) -> FacePreviews:
        """The working image and the face box on it. Hallo3 has no per-region audio strengths, so the pose /
        face / lip maps are empty."""
        from .preprocess import fit_to_working_size

        size = self.working_size
        mask = torch.from_numpy(self.portrait.face_mask).float().div(255)[None, None].expand(1, 3, -1, -1)
        # The box mask through the same geometry as the photo, so it lies where the face is in the working image.
        region = (fit_to_working_size(mask, size)[0, 0] > 0.5).float()
        empty = torch.zeros(size)
        return FacePreviews(((self.portrait.image[0] + 1) / 2).clamp(0, 1), empty, empty, empty, region)

    def video_frames(self, frames: torch.Tensor) -> np.ndarray:
        """A segment's (t, 3, H, W) frames in [0, 1] as the release writes them: (t, H, W', 3) uint8 (truncated;
        a square photo's stretch frames cropped back to H x H)."""
        return frames_to_uint8(frames, square=self.portrait.square).numpy()

    def paste_back(
        self, max_side: int = MAX_SIDE.default, feather: float = FEATHER.default, color_match: bool = True
    ) -> PasteBack:
        """A `framing.PasteBack` of this face's frames into its photo (options as there)."""
        if self.framing is None:
            raise InputError(
                "this face was analysed with framing='stretch' (the release's geometry: the photo scaled and "
                "centre-cropped to the working size), so its frames are the video and there is no crop to paste "
                "back into the photo; analyse it with framing='crop'", "framing",
            )
        return PasteBack(self.photo, self.framing, feather=feather, color_match=color_match, max_side=max_side)


def working_aspect(size: tuple[int, int]) -> Fraction:
    """Width / height of a (height, width) working size, exact (720 x 480: 3/2)."""
    height, width = size
    return Fraction(int(width), int(height))


def cut_size(framing: Framing, size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) the framed rectangle is cut at: its own size in the photo, at most CUT_LIMIT x `size`."""
    if framing.crop_height <= CUT_LIMIT * size[0]:
        return framing.crop_size
    return CUT_LIMIT * size[0], CUT_LIMIT * size[1]  # the crop has the working aspect exactly: so has this


def analyze_face(
    finder: FaceFinder | None,
    rgb: np.ndarray,
    config: Hallo3Config,
    framing: str = "crop",
    crop_scale: float = CROP_SCALE.default,
    expand_ratio: float = FACE_BOX_EXPAND_RATIO,
    multiple_faces: str = "error",
    allow_missing_identity: bool = False,
    *,
    landmarks: np.ndarray | None = None,
    face_embedding: np.ndarray | torch.Tensor | None = None,
) -> Hallo3Face:
    """Analyse a photo (uint8 RGB, or anything `face.images.to_rgb_uint8` reads) for weights of `config`.

    `finder` finds the face and its identity; `landmarks` ((478, 2) pixels of the photo) and `face_embedding`
    ((512,)) stand in for it when given (with both, it may be None). `multiple_faces`: "error" refuses a photo
    with several faces, "largest" takes the largest; `allow_missing_identity`: a zero embedding when the
    recogniser finds no face (the release's silent way)."""
    from ..config import FACE_EXPAND_RATIO
    from ..face.finder import check_landmarks
    from ..face.images import to_rgb_uint8
    from ..face.landmarks import check_multiple_faces_option

    check_framing_mode(framing)
    CROP_SCALE.check(crop_scale)
    FACE_EXPAND_RATIO.check(expand_ratio)
    check_multiple_faces_option(multiple_faces)
    rgb = to_rgb_uint8(rgb)  # also a path or a PIL image; the checked uint8 RGB photo
    size = tuple(int(s) for s in config.segment.image_size)
    height, width = rgb.shape[:2]
    if (landmarks is None or face_embedding is None) and finder is None:
        raise InputError("pass landmarks and face_embedding: there are no face models to find them with",
                         "face_embedding")
    if landmarks is None:
        landmarks = finder.find_landmarks(rgb, multiple_faces)
    landmarks = check_landmarks(landmarks)
    placed, seen, seen_landmarks = None, rgb, landmarks
    if framing == "crop":
        placed = frame_face(landmarks, width, height, crop_scale, working_aspect(size))
        cut = cut_size(placed, size)
        seen = crop_to_size(rgb, placed, cut)
        seen_landmarks = landmarks_in_crop(landmarks, placed, cut)
    if face_embedding is None:
        face_embedding = finder.identity_encoder.embedding(seen, multiple_faces, allow_missing_identity)
    embedding = torch.as_tensor(np.asarray(face_embedding), dtype=torch.float32).reshape(-1)
    expected = config.face_proj.clip_embeddings_dim
    if embedding.numel() != expected:
        raise InputError(
            f"face_embedding has {embedding.numel()} values; the face projection takes {expected} (insightface's "
            "raw embedding)", "face_embedding",
        )
    portrait = prepare_portrait(seen, seen_landmarks, size, expand_ratio)
    return Hallo3Face(
        photo=rgb,
        framing=placed,
        landmarks=working_coordinates(seen_landmarks, seen.shape[0], seen.shape[1], size),
        embedding=embedding,
        portrait=portrait,
    )
