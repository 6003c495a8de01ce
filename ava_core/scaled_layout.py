"""AVA at any scale from a few photos, and the check that a built dataset accounts for every row.

A full-scale AVA directory (255,530 rows) costs little disk when its images are hard
links to a few thousand distinct photos (ext4 allows 65,000 links a file). The build
benchmark lays one out at 1/16, 1/4 and all of the rows; the test suite, at a few
thousand. `check_accounting` reads only the built files, not the build's own reports:
the ids in the TFRecords plus those in rejected.jsonl must be AVA.txt's ids exactly, and
stats.json and dataset_info.json must equal the TFRecords' own counts.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import pathlib
import shutil

import numpy as np
from PIL import Image

from ava_core import ava_index, sample

AVA_NUM_ROWS = 255_530
AVA_TEST_FRACTION = 19_930 / AVA_NUM_ROWS


def draw_photos(directory: pathlib.Path, count: int, seed: int = 0) -> list[pathlib.Path]:
    """Photos of AVA's sizes and file sizes: smooth colour fields with film grain, JPEG q85."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{k}.jpg" for k in range(count)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    for path in paths:
        width, height = int(rng.integers(500, 801)), int(rng.integers(333, 534))
        if rng.random() < 0.3:
            width, height = height, width
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
        grain = rng.normal(0, 7, (height, width, 1)).astype(np.float32)
        Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)).save(path, quality=85)
    return paths


def write_layout(root: pathlib.Path, num_rows: int, photos: list[pathlib.Path], seed: int) -> None:
    """An AVA directory of num_rows valid rows whose images are hard links to `photos`, cycled."""
    shutil.rmtree(root, ignore_errors=True)
    (root / ava_index.IMAGES_DIR).mkdir(parents=True)
    (root / ava_index.TEST_LIST_FILE).parent.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = (rng.choice(ava_index.MAX_IMAGE_ID, size=num_rows, replace=False) + 1).tolist()
    votes = rng.multinomial(rng.integers(78, 550, size=num_rows), np.full(10, 0.1))
    votes[votes.sum(axis=1) == 0, 4] = 1
    tags = rng.integers(0, len(sample.TAG_NAMES) + 1, size=(num_rows, 2))
    challenges = rng.integers(1, sample.MAX_CHALLENGE_ID + 1, size=num_rows)
    lines = []
    for index, image_id in enumerate(ids):
        fields = [index + 1, image_id, *votes[index].tolist(), *tags[index].tolist(), int(challenges[index])]
        lines.append(" ".join(map(str, fields)))
        os.link(photos[index % len(photos)], root / ava_index.IMAGES_DIR / f"{image_id}.jpg")
    (root / ava_index.TAGS_FILE).write_text("".join(f"{i} {n}\n" for i, n in enumerate(sample.TAG_NAMES, 1)))
    test_ids = sorted(rng.choice(ids, size=max(1, round(AVA_TEST_FRACTION * num_rows)), replace=False).tolist())
    (root / ava_index.TEST_LIST_FILE).write_text("".join(f"{i}\n" for i in test_ids))
    (root / ava_index.AVA_INDEX_FILE).write_text("\n".join(lines) + "\n")  # last: its presence means complete


def check_accounting(layout: pathlib.Path, dataset_dir: pathlib.Path) -> list[str]:
    """From the files alone: TFRecord ids + rejected ids == AVA.txt ids; stats and info == TFRecord counts."""
    import tensorflow as tf

    index_ids = collections.Counter(
        int(line.split()[1]) for line in (layout / ava_index.AVA_INDEX_FILE).read_text().splitlines() if line.strip()
    )
    stored, per_split = collections.Counter(), collections.Counter()
    spec = {"image_id": tf.io.FixedLenFeature([], tf.int64)}
    for path in glob.glob(str(dataset_dir / "*.tfrecord-*")):
        split = pathlib.Path(path).name.split("-")[1].split(".")[0]
        parsed = tf.data.TFRecordDataset(path).batch(4096).map(lambda r: tf.io.parse_example(r, spec)["image_id"])
        for batch in parsed:
            stored.update(batch.numpy().tolist())
            per_split[split] += len(batch)
    rejected = [json.loads(line) for line in (dataset_dir / "rejected.jsonl").read_text().splitlines()]
    rejected_rows = collections.Counter(r["image_id"] for r in rejected if r["reason"] != "not_in_index")
    stats = json.loads((dataset_dir / "stats.json").read_text())
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    lengths = {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in info["splits"]}
    problems = []
    if stored + rejected_rows != index_ids:
        missing = index_ids - stored - rejected_rows
        extra = stored + rejected_rows - index_ids
        problems.append(f"{sum(missing.values())} rows of AVA.txt in neither, {sum(extra.values())} ids too many")
    if {s: n for s, n in stats["examples"].items() if n} != dict(per_split):
        problems.append(f"stats.json says {stats['examples']}, the TFRecords hold {dict(per_split)}")
    if {s: n for s, n in lengths.items() if n} != dict(per_split):
        problems.append(f"dataset_info.json says {lengths}, the TFRecords hold {dict(per_split)}")
    return problems
