"""Parsing AVA's own files: the `AVA.txt` index, `tags.txt` and the `.jpgl` image lists.

Pure functions over text, no Beam and no I/O, so the same code serves the pipeline, the
benchmarks and the tests. The layout is AVA's as distributed:
`index image_id c1..c10 tag1 tag2 challenge_id`, space separated.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Iterator, NamedTuple

from ava_core import ratings
from ava_core.rejections import Reason, RejectedInput

AVA_INDEX_FILE = "AVA.txt"
TAGS_FILE = "tags.txt"
CHALLENGES_FILE = "challenges.txt"
TEST_LIST_FILE = "aesthetics_image_lists/generic_test.jpgl"
IMAGES_DIR = "images"
MAX_IMAGE_ID = 999_999  # AVA's ids have at most six digits
NO_TAG = 0
NUM_TAGS_PER_IMAGE = 2
TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

_TAGS_START = 2 + ratings.NUM_BINS
_NUM_FIELDS = _TAGS_START + NUM_TAGS_PER_IMAGE + 1


class AvaRow(NamedTuple):
    """One parsed line of AVA.txt. `index` is AVA's own first column.

    A NamedTuple rather than a dataclass: 255,530 of them are built in a parse, and a
    tuple is several times cheaper to construct.
    """

    index: int
    image_id: int
    rating_counts: tuple[int, ...]
    semantic_tags: tuple[int, int]
    challenge_id: int

    @property
    def num_ratings(self) -> int:
        return sum(self.rating_counts)


class AvaExample(NamedTuple):
    """A validated row with its clean JPEG: everything a dataset example is made from."""

    split: str
    image_id: int
    image: bytes
    rating_counts: tuple[int, ...]
    semantic_tags: tuple[int, int]
    challenge_id: int


def image_path(ava_dir: str, image_id: int) -> str:
    """Where AVA keeps the photo of `image_id`; works for local and gs:// directories."""
    return f"{ava_dir.rstrip('/')}/{IMAGES_DIR}/{image_id}.jpg"


def parse_row(line: str, num_tags: int | None = None) -> AvaRow:
    """Parses one line of AVA.txt.

    Raises RejectedInput(MALFORMED_ROW) for a wrong field count, a non-integer, a
    negative count or id, or a tag id outside `tags.txt` (when `num_tags` is given), and
    RejectedInput(ZERO_VOTES) for a row without votes: such a row has no distribution.
    """
    fields = line.split()
    if len(fields) != _NUM_FIELDS:
        raise RejectedInput(
            Reason.MALFORMED_ROW, f"expected {_NUM_FIELDS} fields, got {len(fields)}: {line.strip()!r}"
        )
    try:
        values = list(map(int, fields))
    except ValueError:
        raise RejectedInput(Reason.MALFORMED_ROW, f"non-integer field: {line.strip()!r}") from None
    image_id, challenge_id = values[1], values[-1]
    counts = tuple(values[2:_TAGS_START])
    tags = tuple(values[_TAGS_START:-1])
    if image_id <= 0 or challenge_id < 0 or min(tags) < 0:
        raise RejectedInput(Reason.MALFORMED_ROW, f"negative or zero id: {line.strip()!r}")
    if min(counts) < 0:
        raise RejectedInput(Reason.MALFORMED_ROW, f"negative vote count: {line.strip()!r}")
    if num_tags is not None and max(tags) >= num_tags:
        raise RejectedInput(
            Reason.MALFORMED_ROW, f"tag id {max(tags)} is not in tags.txt: {line.strip()!r}"
        )
    if sum(counts) == 0:
        raise RejectedInput(Reason.ZERO_VOTES, f"image {image_id} has no votes")
    return AvaRow(values[0], image_id, counts, tags, challenge_id)


def parse_index(lines: Iterable[str], num_tags: int | None = None) -> Iterator[AvaRow | tuple[str, RejectedInput]]:
    """Parses every non-blank line; yields rows, or (line, error) for rejected ones."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield parse_row(line, num_tags)
        except RejectedInput as error:
            yield line, error


def parse_id_list(text: str, source: str) -> list[int]:
    """Parses a `.jpgl` list (one image id a line); `source` names the file in errors."""
    ids = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.append(int(line))
        except ValueError:
            raise ValueError(
                f"{source}:{line_number}: expected one integer image id, got {line.strip()!r}; "
                "is this an AVA .jpgl image list?"
            ) from None
    return ids


def parse_tags(text: str, source: str) -> list[str]:
    """Names of the semantic tags indexed by tag id; id 0 is 'none'.

    ids missing from the file get a placeholder name so that any id up to the largest
    stays addressable; duplicate names get their id appended (ClassLabel needs unique names).
    """
    names = {NO_TAG: "none"}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        tag_id, _, name = line.strip().partition(" ")
        try:
            names[int(tag_id)] = name.strip() or f"tag_{tag_id}"
        except ValueError:
            raise ValueError(
                f"{source}:{line_number}: expected '<tag id> <name>', got {line.strip()!r}"
            ) from None
    ordered = []
    for tag_id in range(max(names) + 1):
        name = names.get(tag_id, f"tag_{tag_id}")
        ordered.append(f"{name} ({tag_id})" if name in ordered else name)
    return ordered


def assign_split(image_id: int, in_test_list: bool, validation_fraction: float) -> str:
    """The official test list is `test`; of the rest, a hashed slice is `validation`.

    A hash of the id (not Python's salted `hash`) so every worker and every rebuild puts
    an image on the same side.
    """
    if in_test_list:
        return TEST
    digest = hashlib.sha256(str(image_id).encode()).digest()
    return VALIDATION if int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction else TRAIN
