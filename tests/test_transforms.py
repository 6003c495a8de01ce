"""The Beam graph on a real tiny AVA directory: shards, reports and counters, read back from disk.

The examples are encoded here as JSON (the graph takes any encoder; the TFDS one is
tested through the builder), so each record says plainly which row and image it holds.
"""

import collections
import io
import json
import pathlib
import struct

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from PIL import Image

from ava_core import ava_index, images
from ava_tfds.ava import features, stats, transforms
from ava_core.read_failures import ReadFailureLimits
from ava_core.rejections import Reason, Rejection

from conftest import BEAM_RUNNER

POLICY = images.ImagePolicy(resize_to=(48, 48))
VALIDATION_FRACTION = 0.2


def run_build(ava_root: pathlib.Path, output_dir: pathlib.Path, **kwargs) -> beam.runners.runner.PipelineResult:
    output_dir.mkdir(exist_ok=True)
    pipeline = TestPipeline(runner=BEAM_RUNNER)
    transforms.build(
        pipeline,
        transforms.BuildSettings(
            str(ava_root), str(output_dir), POLICY, VALIDATION_FRACTION, num_tags=4, **kwargs
        ),
    )
    result = pipeline.run()
    result.wait_until_finish()
    return result


def stored_records(output_dir: pathlib.Path) -> dict[str, list]:
    """split -> (id, split, vote counts, image size) of each example in the shards that
    shards.json lists for the split, in order."""
    listed = json.loads((output_dir / transforms.SHARD_LIST_FILE).read_text())
    stored = {}
    for split, files in listed.items():
        stored[split] = []
        for shard in files:
            for record in tf.data.TFRecordDataset(shard["path"]):
                feature = tf.train.Example.FromString(record.numpy()).features.feature
                stored[split].append((
                    feature[features.IMAGE_ID].int64_list.value[0],
                    split,
                    list(feature[features.RATING_COUNTS].int64_list.value),
                    Image.open(io.BytesIO(feature[features.IMAGE].bytes_list.value[0])).size,
                ))
    return stored


def rejections(output_dir: pathlib.Path) -> list[Rejection]:
    return [Rejection.from_json(line) for line in (output_dir / transforms.REJECTED_FILE).read_text().splitlines()]


def test_every_row_ends_in_exactly_one_place(tiny_ava, tmp_path):
    output_dir = tmp_path / "out"
    run_build(tiny_ava.root, output_dir)

    stored = stored_records(output_dir)
    kept = sorted((image_id, split, tuple(counts)) for records in stored.values() for image_id, split, counts, _ in records)
    expected = sorted(
        (i, ava_index.assign_split(i, i in tiny_ava.test_ids, VALIDATION_FRACTION), counts)
        for i, counts in tiny_ava.kept.items()
    )
    assert kept == expected  # each in the shards of its own split
    assert {tuple(size) for records in stored.values() for *_, size in records} == {(48, 48)}

    rejected = rejections(output_dir)
    assert sorted((r.image_id or 0, r.reason.value) for r in rejected) == sorted(
        (i or 0, reason.value) for i, reason in tiny_ava.expected_rejections
    )
    assert all(r.detail for r in rejected)
    assert "images/2004.jpg" in next(r for r in rejected if r.image_id == 2004).detail

    summary = json.loads((output_dir / stats.STATS_FILE).read_text())
    assert summary["index_rows"] == tiny_ava.num_index_rows
    assert summary["examples"] == {split: len(records) for split, records in stored.items() if records}
    rows_rejected = sum(summary["rejected"].values()) - summary["rejected"]["not_in_index"]
    assert sum(summary["examples"].values()) + rows_rejected == tiny_ava.num_index_rows
    assert summary["statistics"]["test"]["num_ratings"]["count"] == len(tiny_ava.test_ids)
    assert (output_dir / transforms.EDA_FIGURE_FILE).read_bytes().startswith(b"\x89PNG")


def test_beam_counters_count_rejections_and_examples(tiny_ava, tmp_path):
    result = run_build(tiny_ava.root, tmp_path / "out")
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(transforms.METRICS_NAMESPACE))["counters"]
    }
    expected = collections.Counter(f"rejected_{reason.value}" for _, reason in tiny_ava.expected_rejections)
    assert {k: v for k, v in counters.items() if k.startswith("rejected_")} == expected
    assert sum(v for k, v in counters.items() if k.startswith("examples_")) == len(tiny_ava.kept)
    assert counters["index_rows"] == tiny_ava.num_index_rows


def test_shards_roll_over_at_the_size_asked_and_keep_every_record_once(tiny_ava, tmp_path):
    output_dir = tmp_path / "out"
    shard_bytes = 5000  # an example of a 48x48 photo is 1-2 kB: a new file every few examples
    run_build(tiny_ava.root, output_dir, shard_bytes=shard_bytes)
    listed = json.loads((output_dir / transforms.SHARD_LIST_FILE).read_text())
    assert len(listed["train"]) >= 3
    paths = [shard["path"] for files in listed.values() for shard in files]
    largest = max(len(record.numpy()) + 16 for record in tf.data.TFRecordDataset(paths))  # 16: the framing
    for files in listed.values():  # a file closes with the record that reaches the size
        assert all(shard["num_bytes"] < shard_bytes + largest for shard in files)
    stored = stored_records(output_dir)
    ids = [record[0] for records in stored.values() for record in records]
    assert sorted(ids) == sorted(tiny_ava.kept)
    for files in listed.values():
        for shard in files:
            assert shard["num_examples"] == sum(1 for _ in tf.data.TFRecordDataset(shard["path"]))


def _flaky_reads(real_read, failures: dict[str, list[Exception]]):
    """A reader that raises the listed errors for a path, one per read, before reading it for real."""

    def read(path: str) -> bytes:
        pending = failures.get(pathlib.Path(path).name)
        if pending:
            raise pending.pop(0)
        return real_read(path)

    return read


def test_unreadable_paths_are_rejections_and_a_read_that_recovers_is_an_example(tiny_ava, tmp_path, monkeypatch):
    images_dir = tiny_ava.root / ava_index.IMAGES_DIR
    directory_id, no_permission_id, recovers_id, keeps_failing_id = sorted(tiny_ava.kept)[:4]
    (images_dir / f"{directory_id}.jpg").unlink()
    (images_dir / f"{directory_id}.jpg").mkdir()
    # The suite runs as root, which chmod cannot stop: the denial is injected at the read.
    failures = {
        f"{no_permission_id}.jpg": [PermissionError(13, "Permission denied")] * transforms.READ_ATTEMPTS,
        f"{recovers_id}.jpg": [TimeoutError("read timed out"), ConnectionResetError("reset by peer")],
        f"{keeps_failing_id}.jpg": [OSError("503 Service Unavailable")] * 10,
    }
    monkeypatch.setattr(transforms, "_read_bytes", _flaky_reads(transforms._read_bytes, failures))
    monkeypatch.setattr(transforms, "READ_RETRY_DELAYS_S", (0.01, 0.01))
    output_dir = tmp_path / "out"
    # No sample read before the main pass: it would spend the failures planted for the main pass's tries.
    run_build(tiny_ava.root, output_dir, read_limits=ReadFailureLimits(sample_size=0))

    unreadable = {r.image_id: r.detail for r in rejections(output_dir) if r.reason == Reason.UNREADABLE}
    assert set(unreadable) == {directory_id, no_permission_id, keeps_failing_id}
    assert "IsADirectoryError" in unreadable[directory_id]
    assert "PermissionError" in unreadable[no_permission_id]
    assert "503 Service Unavailable" in unreadable[keeps_failing_id]
    assert all(f"{transforms.READ_ATTEMPTS} reads failed" in detail for detail in unreadable.values())
    stored_ids = {record[0] for records in stored_records(output_dir).values() for record in records}
    assert recovers_id in stored_ids
    assert stored_ids == set(tiny_ava.kept) - set(unreadable)


def test_a_decoder_exception_nobody_listed_is_that_images_rejection(tiny_ava, tmp_path):
    """A DDS file with an unimplemented pixel format makes Pillow raise NotImplementedError."""
    victim = sorted(tiny_ava.kept)[5]
    (tiny_ava.root / ava_index.IMAGES_DIR / f"{victim}.jpg").write_bytes(dds_with_unknown_pixel_format())
    output_dir = tmp_path / "out"
    run_build(tiny_ava.root, output_dir)
    rejected = {r.image_id: r for r in rejections(output_dir)}
    assert rejected[victim].reason == Reason.UNDECODABLE
    assert "NotImplementedError" in rejected[victim].detail and f"{victim}.jpg" in rejected[victim].detail
    stored_ids = {record[0] for records in stored_records(output_dir).values() for record in records}
    assert stored_ids == set(tiny_ava.kept) - {victim}


def dds_with_unknown_pixel_format(width: int = 64, height: int = 64) -> bytes:
    pixel_format = struct.pack("<II4sIIIII", 32, 0x4, b"XXXX", 0, 0, 0, 0, 0)  # DDPF_FOURCC with an unknown code
    header = struct.pack("<IIIIIII", 124, 0x1007, height, width, 0, 0, 0) + bytes(44) + pixel_format
    return b"DDS " + header + struct.pack("<IIIII", 0x1000, 0, 0, 0, 0) + bytes(width * height)


def test_a_bad_line_of_the_test_list_is_named_by_its_number(tiny_ava, tmp_path):
    test_list = tiny_ava.root / ava_index.TEST_LIST_FILE
    lines = test_list.read_text().splitlines()
    test_list.write_text("\n".join(lines[:2] + ["12x"] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=r"generic_test.jpgl:3: expected one integer image id, got '12x'"):
        run_build(tiny_ava.root, tmp_path / "out")
