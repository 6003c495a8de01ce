"""A synthetic AVA in AVA's own layout: runs the whole system anywhere, with no download.

`write_sample` writes `AVA.txt`, `tags.txt`, `challenges.txt`, the official-test list and
`images/<id>.jpg` exactly as AVA is distributed, so the pipeline, the TFDS builder and the
trainer run unchanged on it (the `sample` config).

What makes it more than a fixture:
- Every photo is drawn from latent attributes (sharpness, exposure, contrast,
  colourfulness, placement of the subject) and its vote histogram follows a fixed hidden
  function of those attributes plus rater noise. The attributes are plainly visible even at
  96 px, so a small CNN can learn the scores, and a training run on the sample says whether
  the model learns at all.
- The framed variant (`framed=True`, the dataset's `sample_full` config) is for models that
  see the whole photo at its own aspect ratio: every photo is a wide or a tall frame, its
  shapes are drawn at proportions of their own, and the voters also reward a subject in
  its true, round proportions. A photo squashed to a square stretches every shape by the
  frame's aspect ratio, so a round subject looks oval and an oval one may look round:
  that part of the score is plain to a model that keeps the aspect ratio and blurred for
  one that squashes (it would have to infer the stretch from the other shapes, themselves
  of random proportions). Placement by the thirds points stays a minor factor: measured
  in fractions of the frame, it survives squashing.
- It plants every kind of broken input the pipeline must survive (missing, empty,
  truncated and undecodable files, a malformed row, zero votes, a duplicate id, a listed id
  with no row, a tiny image) and unusual but valid ones (grayscale, CMYK, PNG with alpha,
  palette GIF, EXIF-rotated JPEG), and says in `sample_manifest.json` how each input must
  end.

The output is byte-for-byte the same for the same arguments. `AVA.txt` is written last,
so its presence means the sample is complete.

    python -m ava_core.sample --out_dir=/tmp/ava_sample [--num_images=400] [--seed=0] [--framed]
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
from typing import Callable, Optional, Sequence

import numpy as np
from absl import app, flags, logging
from etils import epath
from PIL import Image, ImageDraw, ImageFilter

from ava_core import ava_index, images, ratings
from ava_core.rejections import Reason

MANIFEST_FILE = "sample_manifest.json"
TAG_NAMES = (
    "Abstract", "Animals", "Architecture", "Black and White", "Candid", "Children",
    "Cityscape", "Digital Art", "Emotive", "Family", "Fashion", "Floral", "Food and Drink",
    "Humorous", "Interior", "Landscape", "Macro", "Nature", "Nude", "Persuasive",
    "Portraiture", "Rural", "Seascapes", "Science and Technology", "Sky", "Snapshot",
    "Sports", "Still Life", "Traditional Art", "Travel", "Urban", "Vintage", "Water",
    "Action", "Advertisement", "Astrophotography", "Blur", "Camera Phones",
    "Diptych / Triptych", "Drama", "Fish Eye", "High Dynamic Range (HDR)", "History",
    "Infrared", "Insects", "Lensbaby", "Military", "Music", "Night", "Panoramic",
    "Performance", "Photo-Impressionism", "Photojournalism", "Political", "Self Portrait",
    "Silhouettes", "Sepia", "Street", "Textures", "Transportation", "Wedding", "Wildlife",
    "Birds", "Reflections", "Shadows", "Trees",
)  # tag ids 1..66, as in AVA; 0 is "no tag"
CHALLENGE_THEMES = (
    "Free Study", "Macro", "Shadows", "Red", "Minimalism", "Self Portrait", "Motion Blur",
    "Rule of Thirds", "Silhouettes", "Abandoned", "Water Drops", "Texture", "Doors",
    "Reflections", "Night Sky", "Curves", "Negative Space", "Fruit", "Symmetry", "Hands",
)
NUM_CHALLENGES = 40
MAX_CHALLENGE_ID = 1500
TEST_FRACTION = 0.2
# Votes a photo: AVA has 78..549, mean 210, sd 61; a gamma with that mean and sd, clipped.
MIN_VOTES, MAX_VOTES, MEAN_VOTES, SD_VOTES = 78, 549, 210.0, 61.0
# Hidden quality q in [0, 1] is this weighted sum of per-attribute goodness in [0, 1]; a
# photo's votes centre on MEAN_SCORE + SCORE_SLOPE * (q - 0.5), with rater noise of a
# per-photo spread in RATER_SD. AVA's mean scores: mean 5.38, sd 0.73, range 1.8..8.6.
QUALITY_WEIGHTS = {"sharpness": 0.3, "exposure": 0.25, "colourfulness": 0.2, "contrast": 0.15, "placement": 0.1}
MEAN_SCORE, SCORE_SLOPE = 5.4, 7.0
RATER_SD = (1.1, 1.7)
# How far each attribute moves the pixels: large on purpose, so 96 px still shows it.
MAX_BLUR_FRACTION = 0.04  # blur radius at sharpness 0, as a fraction of the short side
EXPOSURE_STOPS = 2.0  # exposure -1 divides the light by 2**2; +1 pushes 3/4 of the way to white
THIRDS_REACH = 0.25  # placement goodness falls to 0 this far (in frame fractions) from a thirds point
# The framed variant: long side / short side of every frame, and the largest stretch
# (width / height, or its inverse) of a shape. Its voters weigh the subject's proportions:
# 1 when drawn round, 0 at the largest stretch.
FRAMED_ASPECT = (1.5, 2.0)
MAX_STRETCH = 2.5
FRAMED_QUALITY_WEIGHTS = {
    "sharpness": 0.25, "exposure": 0.2, "colourfulness": 0.15, "contrast": 0.1, "placement": 0.05, "proportions": 0.25,
}
NUM_CLUTTER_SHAPES = 14
JPEG_QUALITY = 90
TINY_SIDE = 20
TRUNCATE_FRACTION = 0.6
NOT_AN_IMAGE_PREFIX = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"
_EXIF_ORIENTATION = 0x0112
_THIRDS_POINTS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class SampleManifest:
    """What a sample holds and how every input must end.

    num_rows: lines in AVA.txt, bad ones included.
    expected_rejections: one (image_id, reason) per rejection the pipeline must report;
        image_id is None for the malformed row, whose id cannot be trusted.
    good_ids: every id that must become an example (sorted).
    test_ids: the good ids on the official test list (sorted); the list also names the
        NOT_IN_INDEX id.
    planted: the id used for each planted input, by the names in PLANTED (for the
        malformed row, the id written in it; for the duplicate, the id it repeats).
    """

    num_rows: int
    expected_rejections: tuple[tuple[Optional[int], Reason], ...]
    good_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    planted: dict[str, int]

    def to_json(self) -> str:
        """The manifest as `sample_manifest.json` holds it: reasons by their string value."""
        return json.dumps(
            {
                "num_rows": self.num_rows,
                "planted": self.planted,
                "expected_rejections": [
                    {"image_id": image_id, "reason": reason.value} for image_id, reason in self.expected_rejections
                ],
                "test_ids": list(self.test_ids),
                "good_ids": list(self.good_ids),
            },
            indent=1,
        ) + "\n"


def write_sample(
    out_dir: str, num_images: int = 400, seed: int = 0, min_side: int = 256, max_side: int = 480, framed: bool = False
) -> SampleManifest:
    """Writes a synthetic AVA under `out_dir` (local or any Beam filesystem, e.g. gs://).

    num_images: the ordinary synthetic photos. The planted inputs come on top: 5 unusual
        but valid photos (also good ids) and 8 bad rows, so AVA.txt has num_images + 13
        rows, and the test list names one more id that has no row.
    min_side, max_side: range of each side of a photo, drawn independently (so both
        landscape and portrait); min_side must pass the pipeline's own minimum. When
        framed, the range of the long side; the short side is FRAMED_ASPECT times shorter.
    framed: the variant for whole-image models (see the module docstring).
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    smallest = images.DEFAULT_MIN_SIDE * (FRAMED_ASPECT[1] if framed else 1)
    if not smallest <= min_side <= max_side:
        raise ValueError(
            f"need {smallest:g} <= min_side <= max_side (the pipeline rejects photos with a side under "
            f"{images.DEFAULT_MIN_SIDE}), got min_side={min_side}, max_side={max_side}"
        )
    rng = np.random.default_rng(seed)
    num_planted_ids = sum(1 for kind in PLANTED.values() if kind.recipe is not None)
    ids = (rng.choice(ava_index.MAX_IMAGE_ID, size=num_images + num_planted_ids, replace=False) + 1).tolist()
    planted = {name: ids.pop() for name, kind in PLANTED.items() if kind.recipe is not None}
    challenges = sorted((rng.choice(MAX_CHALLENGE_ID, size=NUM_CHALLENGES, replace=False) + 1).tolist())

    files: dict[int, bytes] = {}
    rows: list[tuple[int, list[int]]] = []  # (image_id, vote counts), in AVA.txt order before shuffling
    logging.info("Drawing %d synthetic photos into %s", num_images, out_dir)
    for count, image_id in enumerate(ids, start=1):
        look = _random_look(rng, framed)
        files[image_id] = _encode(_draw(rng, look, _random_size(rng, min_side, max_side, framed)), "JPEG")
        rows.append((image_id, _votes(rng, look.quality)))
        if count % 100 == 0:
            logging.info("Drew %d of %d photos", count, num_images)
    for name, image_id in planted.items():
        data, counts = _planted_input(rng, PLANTED[name], min_side, max_side, framed)
        if data is not None:
            files[image_id] = data
        if counts is not None:
            rows.append((image_id, counts))
    good_ids = sorted(ids + [planted[name] for name, kind in PLANTED.items() if kind.reason is None])
    planted["duplicate_id"] = int(rng.choice(good_ids))

    lines = [_row_fields(rng, image_id, counts, challenges) for image_id, counts in rows]
    rng.shuffle(lines)
    first = next(i for i, fields in enumerate(lines) if fields[0] == str(planted["duplicate_id"]))
    duplicate = _row_fields(rng, planted["duplicate_id"], _votes(rng, rng.uniform()), challenges)
    lines.insert(int(rng.integers(first + 1, len(lines) + 1)), duplicate)
    test_ids = sorted(rng.choice(good_ids, size=round(TEST_FRACTION * len(good_ids)), replace=False).tolist())

    manifest = SampleManifest(
        num_rows=len(lines),
        expected_rejections=tuple(
            (None if kind.reason == Reason.MALFORMED_ROW else planted[name], kind.reason)
            for name, kind in PLANTED.items()
            if kind.reason is not None
        ),
        good_ids=tuple(good_ids),
        test_ids=tuple(test_ids),
        planted=planted,
    )
    for image_id, data in files.items():
        _write(ava_index.image_path(out_dir, image_id), data)
    missing = ava_index.image_path(out_dir, planted["missing_file"])
    epath.Path(missing).unlink(missing_ok=True)  # left over from an earlier sample in the same directory
    _write(epath.Path(out_dir) / ava_index.TAGS_FILE, _numbered_lines(TAG_NAMES, range(1, len(TAG_NAMES) + 1)))
    _write(epath.Path(out_dir) / ava_index.CHALLENGES_FILE, _numbered_lines(_challenge_names(), challenges))
    test_list = sorted(test_ids + [planted["not_in_index"]])
    _write(epath.Path(out_dir) / ava_index.TEST_LIST_FILE, "".join(f"{i}\n" for i in test_list).encode())
    _write(epath.Path(out_dir) / MANIFEST_FILE, manifest.to_json().encode())
    text = "".join(" ".join([str(index), *fields]) + "\n" for index, fields in enumerate(lines, start=1))
    _write(epath.Path(out_dir) / ava_index.AVA_INDEX_FILE, text.encode())
    return manifest


def main(argv: Sequence[str]) -> None:
    """Writes the sample the flags describe and prints a one-line summary."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    manifest = write_sample(
        FLAGS.out_dir, FLAGS.num_images, FLAGS.seed, FLAGS.min_side, FLAGS.max_side, FLAGS.framed
    )
    print(
        f"Wrote a synthetic AVA to {FLAGS.out_dir}: {manifest.num_rows} rows, {len(manifest.good_ids)} good "
        f"photos ({len(manifest.test_ids)} on the test list), {len(manifest.expected_rejections)} planted "
        f"rejections; see {MANIFEST_FILE}"
    )



def _define_flags() -> None:
    # Defined only when run as a program: the TFDS builder and other absl programs import
    # this module, and a second --seed or --out_dir would clash with theirs.
    flags.DEFINE_string("out_dir", None, "Directory to write the sample to (local or gs://).", required=True)
    flags.DEFINE_integer("num_images", 400, "Ordinary synthetic photos; 13 planted rows come on top.")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same bytes.")
    flags.DEFINE_integer("min_side", 256, "Smallest side of a photo in pixels.")
    flags.DEFINE_integer("max_side", 480, "Largest side of a photo in pixels.")
    flags.DEFINE_bool("framed", False, "Wide and tall frames whose subject's proportions count: for whole-image models.")


@dataclasses.dataclass(frozen=True)
class _Look:
    """The latent attributes of one photo; `quality` is the hidden function of them."""

    sharpness: float  # 0 = heavy blur, 1 = crisp
    exposure: float  # -1 = dark, 0 = well exposed, 1 = washed out towards white
    contrast: float  # 0 = flat, 1 = full
    colourfulness: float  # 0 = grey, 1 = vivid
    subject_xy: tuple[float, float]  # centre of the subject, as fractions of width and height
    # Width / height of the subject as drawn in the framed variant; None draws it round and
    # leaves proportions out of the votes.
    subject_stretch: Optional[float] = None

    @property
    def quality(self) -> float:
        distance = np.min(np.hypot(*(_THIRDS_POINTS - np.array(self.subject_xy)).T))
        goodness = {
            "sharpness": self.sharpness,
            "exposure": 1.0 - abs(self.exposure),
            "colourfulness": self.colourfulness,
            "contrast": self.contrast,
            "placement": max(0.0, 1.0 - distance / THIRDS_REACH),
        }
        weights = QUALITY_WEIGHTS
        if self.subject_stretch is not None:
            goodness["proportions"] = 1.0 - abs(np.log(self.subject_stretch)) / np.log(MAX_STRETCH)
            weights = FRAMED_QUALITY_WEIGHTS
        return float(sum(weights[name] * value for name, value in goodness.items()))


def _random_look(rng: np.random.Generator, framed: bool) -> _Look:
    look = _Look(
        sharpness=float(rng.uniform()),
        exposure=float(rng.uniform(-1, 1)),
        contrast=float(rng.uniform()),
        colourfulness=float(rng.uniform()),
        subject_xy=(float(rng.uniform(0.12, 0.88)), float(rng.uniform(0.12, 0.88))),
    )
    return dataclasses.replace(look, subject_stretch=_random_stretch(rng)) if framed else look


def _random_stretch(rng: np.random.Generator) -> float:
    """Width / height of a framed-variant shape, log-uniform within MAX_STRETCH either way."""
    return float(np.exp(rng.uniform(-np.log(MAX_STRETCH), np.log(MAX_STRETCH))))


def _random_size(rng: np.random.Generator, min_side: int, max_side: int, framed: bool) -> tuple[int, int]:
    if framed:
        long = int(rng.integers(min_side, max_side + 1))
        short = round(long / rng.uniform(*FRAMED_ASPECT))
        return (long, short) if rng.uniform() < 0.5 else (short, long)
    width, height = rng.integers(min_side, max_side + 1, size=2)
    return int(width), int(height)


def _votes(rng: np.random.Generator, quality: float) -> list[int]:
    """A histogram of AVA-many votes centred on the score the hidden quality implies."""
    shape, scale = (MEAN_VOTES / SD_VOTES) ** 2, SD_VOTES**2 / MEAN_VOTES
    num_votes = int(np.clip(round(rng.gamma(shape, scale)), MIN_VOTES, MAX_VOTES))
    centre = MEAN_SCORE + SCORE_SLOPE * (quality - 0.5)
    votes = np.round(rng.normal(centre, rng.uniform(*RATER_SD), num_votes))
    votes = np.clip(votes, ratings.MIN_SCORE, ratings.MAX_SCORE)
    return np.bincount(votes.astype(int) - ratings.MIN_SCORE, minlength=ratings.NUM_BINS).tolist()


def _vivid(rng: np.random.Generator, hue: float, saturation: float = 0.85) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, float(rng.uniform(0.55, 0.95)))
    return int(red * 255), int(green * 255), int(blue * 255)


def _draw(rng: np.random.Generator, look: _Look, size: tuple[int, int]) -> Image.Image:
    """Renders a background, clutter and a ringed subject, then applies the look."""
    width, height = size
    short = min(width, height)
    hue = float(rng.uniform())
    top, bottom = np.array(_vivid(rng, hue, 0.6)), np.array(_vivid(rng, hue + 0.15, 0.6))
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    background = top + (bottom - top) * ramp
    image = Image.fromarray(np.broadcast_to(background, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(NUM_CLUTTER_SHAPES):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.03, 0.09) * short
        colour = _vivid(rng, hue + rng.uniform(0.3, 0.7), 0.7)
        shape = draw.ellipse if rng.uniform() < 0.5 else draw.rectangle
        stretch = 1.0 if look.subject_stretch is None else _random_stretch(rng)
        shape(_box(x, y, radius, stretch), fill=colour)
    centre_x, centre_y = look.subject_xy[0] * width, look.subject_xy[1] * height
    radius = rng.uniform(0.14, 0.22) * short
    subject_hue = hue + 0.5
    for ring, colour in enumerate([_vivid(rng, subject_hue, 0.95), (245, 245, 235)] * 3):
        draw.ellipse(_box(centre_x, centre_y, radius * (1 - ring / 6), look.subject_stretch or 1.0), fill=colour)
    blur = (1.0 - look.sharpness) * MAX_BLUR_FRACTION * short
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    pixels = grey[..., None] + (pixels - grey[..., None]) * (1.2 * look.colourfulness)
    pixels = grey.mean() + (pixels - grey.mean()) * (0.15 + 0.95 * look.contrast)
    stops = EXPOSURE_STOPS * look.exposure
    pixels = np.clip(pixels, 0.0, 1.0)
    pixels = pixels * 2.0**stops if stops < 0 else 1.0 - (1.0 - pixels) * 2.0**-stops
    return Image.fromarray(np.round(pixels * 255.0).astype(np.uint8))


def _box(x: float, y: float, radius: float, stretch: float) -> tuple[float, float, float, float]:
    """The box of a shape of this area-equivalent radius, `stretch` times wider than tall."""
    half_width, half_height = radius * stretch**0.5, radius / stretch**0.5
    return (x - half_width, y - half_height, x + half_width, y + half_height)


def _encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        options.setdefault("quality", JPEG_QUALITY)
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


Recipe = Callable[[np.random.Generator, Image.Image, list[int]], tuple[Optional[bytes], Optional[list[int]]]]


@dataclasses.dataclass(frozen=True)
class Planted:
    """One planted input: how the build must end it, and how it is made.

    reason: the rejection it must become, or None for an odd but valid input that must
        become an example.
    recipe: (rng, a drawn photo, its votes) -> (the file's bytes or None for no file, the
        votes of its AVA.txt row or None for no row). None for the duplicate id, whose
        second row repeats a good id once every row is drawn.
    colourless: the photo is drawn without colour (what its voters saw).
    """

    reason: Optional[Reason]
    recipe: Optional[Recipe]
    colourless: bool = False


def _jpeg(photo: Image.Image, **params) -> bytes:
    return _encode(photo, "JPEG", **params)


def _truncated(rng, photo, votes):
    data = _jpeg(photo)
    return data[: int(len(data) * TRUNCATE_FRACTION)], votes


def _png_with_transparent_corner(rng, photo, votes):
    alpha = np.full((photo.height, photo.width), 255, dtype=np.uint8)
    alpha[: photo.height // 8, : photo.width // 8] = 0
    photo.putalpha(Image.fromarray(alpha))
    return _encode(photo, "PNG"), votes


def _exif_rotated(rng, photo, votes):
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION] = 6  # viewers turn it 90 degrees clockwise to show it upright
    return _jpeg(photo.transpose(Image.Transpose.ROTATE_90), exif=exif), votes


PLANTED = {
    "missing_file": Planted(Reason.MISSING_FILE, lambda rng, photo, votes: (None, votes)),
    "empty_file": Planted(Reason.EMPTY_FILE, lambda rng, photo, votes: (b"", votes)),
    "truncated": Planted(Reason.TRUNCATED, _truncated),
    "undecodable": Planted(Reason.UNDECODABLE, lambda rng, photo, votes: (NOT_AN_IMAGE_PREFIX + rng.bytes(2048), votes)),
    "malformed_row": Planted(Reason.MALFORMED_ROW, lambda rng, photo, votes: (None, votes[:-1])),  # 9 vote columns
    "zero_votes": Planted(Reason.ZERO_VOTES, lambda rng, photo, votes: (_jpeg(photo), [0] * ratings.NUM_BINS)),
    "duplicate_id": Planted(Reason.DUPLICATE_ID, None),
    "not_in_index": Planted(Reason.NOT_IN_INDEX, lambda rng, photo, votes: (None, None)),
    "too_small": Planted(Reason.TOO_SMALL, lambda rng, photo, votes: (_jpeg(photo.resize((TINY_SIDE, TINY_SIDE))), votes)),
    "grayscale": Planted(None, lambda rng, photo, votes: (_jpeg(photo.convert("L")), votes), colourless=True),
    "cmyk": Planted(None, lambda rng, photo, votes: (_jpeg(photo.convert("CMYK")), votes)),
    "png_alpha": Planted(None, _png_with_transparent_corner),
    "palette_gif": Planted(None, lambda rng, photo, votes: (_encode(photo.quantize(colors=256), "GIF"), votes)),
    "exif_rotated": Planted(None, _exif_rotated),
}


def _planted_input(
    rng: np.random.Generator, planted: Planted, min_side: int, max_side: int, framed: bool
) -> tuple[Optional[bytes], Optional[list[int]]]:
    look = _random_look(rng, framed)
    if planted.colourless:
        look = dataclasses.replace(look, colourfulness=0.0)
    photo = _draw(rng, look, _random_size(rng, min_side, max_side, framed))
    return planted.recipe(rng, photo, _votes(rng, look.quality))


def _row_fields(rng: np.random.Generator, image_id: int, counts: list[int], challenges: list[int]) -> list[str]:
    """`image_id c1..c10 tag1 tag2 challenge_id` (the index is prepended once rows are ordered)."""
    tag1 = int(rng.integers(1, len(TAG_NAMES) + 1)) if rng.uniform() < 0.9 else ava_index.NO_TAG
    tag2 = int(rng.integers(1, len(TAG_NAMES) + 1)) if tag1 and rng.uniform() < 0.7 else ava_index.NO_TAG
    challenge = challenges[int(rng.integers(len(challenges)))]
    return [str(value) for value in (image_id, *counts, tag1, tag2, challenge)]


def _challenge_names() -> list[str]:
    editions = ("", " II", " III", " IV", " V")
    return [
        CHALLENGE_THEMES[i % len(CHALLENGE_THEMES)] + editions[i // len(CHALLENGE_THEMES) % len(editions)]
        for i in range(NUM_CHALLENGES)
    ]


def _numbered_lines(names: Sequence[str], ids: Sequence[int]) -> bytes:
    return "".join(f"{i} {name}\n" for i, name in zip(ids, names)).encode()


def _write(path: str | epath.Path, data: bytes) -> None:
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
