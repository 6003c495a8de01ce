"""A build of a few thousand rows, on the README's local runner, checked row by row from its files.

The row losses seen at full scale came from the runner (see transforms' docstring and
benchmarks/RESULTS.md); this checks at the size a suite affords that every id of AVA.txt
is in the TFRecords or rejected.jsonl exactly once, and that the reports agree with the
TFRecords, through `python -m beam_pipelines.build` with two worker processes. The same
check runs at 255,530 rows in `benchmarks/build_benchmark.py`.
"""

import json
import pathlib
import subprocess
import sys

import tensorflow_datasets as tfds

import image_zoo
from ava_core import ava_index, scaled_layout

from conftest import BEAM_RUNNER, DATASET_VERSION

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_ROWS = 3000
# Valid files of other formats under a .jpg name, as scraped collections hold them.
ODD_BUT_VALID = ("tiff-lzw", "tiff-jpeg", "webp-lossy", "gif-animated", "mpo", "jpeg2000", "ico", "png-i16", "tiff-f", "bmp")


def test_every_row_of_a_few_thousand_is_accounted_for_from_the_files(tmp_path):
    photos = scaled_layout.draw_photos(tmp_path / "photos", 24)
    ava = tmp_path / "ava"
    scaled_layout.write_layout(ava, NUM_ROWS, photos, seed=1)
    index_lines = (ava / ava_index.AVA_INDEX_FILE).read_text().splitlines()
    zoo = image_zoo.zoo()
    odd_ids = [int(line.split()[1]) for line in index_lines[: len(ODD_BUT_VALID)]]
    fuzzed_ids = [int(line.split()[1]) for line in index_lines[len(ODD_BUT_VALID) : len(ODD_BUT_VALID) + 40]]
    for image_id, name in zip(odd_ids, ODD_BUT_VALID):
        path = ava / ava_index.IMAGES_DIR / f"{image_id}.jpg"
        path.unlink()  # a hard link: replace it, do not write through it
        path.write_bytes(zoo[name])
    fuzzed = [data for name in ("jpeg-rgb", "png-rgba", "webp-lossy") for _, data in image_zoo.mutations(zoo[name], 14, seed=7)]
    for image_id, data in zip(fuzzed_ids, fuzzed):
        path = ava / ava_index.IMAGES_DIR / f"{image_id}.jpg"
        path.unlink()
        path.write_bytes(data)

    out = tmp_path / "tfds"
    subprocess.run(
        [
            sys.executable, "-m", "beam_pipelines.build", f"--ava_dir={ava}", f"--output_dir={out}", "--config=256",
            "--direct_num_workers=2",
        ],
        check=True, cwd=REPO, capture_output=True,
    )
    dataset_dir = out / "ava" / "256" / DATASET_VERSION
    assert scaled_layout.check_accounting(ava, dataset_dir) == []

    rejected = {r["image_id"]: r for r in map(json.loads, (dataset_dir / "rejected.jsonl").read_text().splitlines())}
    assert not set(odd_ids) & set(rejected), [rejected[i] for i in set(odd_ids) & set(rejected)]
    assert set(rejected) <= set(fuzzed_ids)
    builder = tfds.builder_from_directory(str(dataset_dir))
    examples = sum(builder.info.splits[split].num_examples for split in ava_index.SPLITS)
    assert examples == NUM_ROWS - len(rejected)
    read_back = sum(1 for split in ava_index.SPLITS for _ in builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}))
    assert read_back == examples


def test_misplaced_images_fail_early_saying_where_they_were_looked_for(tmp_path):
    ava = tmp_path / "ava"
    scaled_layout.write_layout(ava, 300, scaled_layout.draw_photos(tmp_path / "photos", 3), seed=2)
    images_dir = ava / ava_index.IMAGES_DIR
    nested = images_dir / ava_index.IMAGES_DIR  # the common slip: the archive unpacked one level too deep
    nested.mkdir()
    for path in list(images_dir.glob("*.jpg")):
        path.rename(nested / path.name)
    result = subprocess.run(
        [
            sys.executable, "-m", "beam_pipelines.build", f"--ava_dir={ava}", f"--output_dir={tmp_path / 'tfds'}",
            f"--runner={BEAM_RUNNER}",
        ],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr[result.stderr.index("error: None of the photos"):]
    assert f"is in {images_dir} " in message and "that directory holds 0 .jpg files" in message
    assert f"{nested} exists: move its files up" in message
    assert not (tmp_path / "tfds" / "ava" / "256" / DATASET_VERSION).exists()
