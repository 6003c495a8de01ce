"""Broken storage is not bad data: a build whose reads fail wholesale stops in seconds with
its cause, publishes nothing, and a build with a few bad photos goes on."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time

import pytest
import tensorflow_datasets as tfds

import ava_tfds  # noqa: F401  (registers the `ava` builder)
from ava_core import read_failures, sample
from ava_core.read_failures import ReadFailureLimits, ReadTally, StorageFailure
from ava_core.rejections import Reason

REPO = pathlib.Path(__file__).resolve().parents[1]
LIMITS = ReadFailureLimits(max_fraction=0.05, min_failures=20, sample_size=64, sample_max_fraction=0.5)
# The goal for the sample's 413 rows on 2 cores.
SECONDS_TO_STOP = 120


def _tally(rows: int, failures: dict[Reason, int]) -> ReadTally:
    tally = ReadTally(LIMITS, "gs://bucket/ava/images")
    for reason, count in failures.items():
        for index in range(count):
            tally.record(reason, f"gs://bucket/ava/images/{index}.jpg: 403 Forbidden")
    for _ in range(rows - sum(failures.values())):
        tally.record(None)
    return tally


def test_a_real_avas_few_bad_photos_never_stop_a_worker():
    """AVA: about 20 missing and a handful of unreadable photos among 255,530 rows; a worker
    that happens to meet all of them early has still read hundreds of rows."""
    _tally(400, {Reason.MISSING_FILE: 19, Reason.UNREADABLE: 6}).check()
    _tally(10_000, {Reason.MISSING_FILE: 400}).check()  # 4%: under the limit of 5%


@pytest.mark.parametrize("reason, word", [(Reason.UNREADABLE, "unreadable"), (Reason.MISSING_FILE, "missing")])
def test_reads_failing_wholesale_stop_the_worker_with_their_cause(reason, word):
    with pytest.raises(StorageFailure) as error:
        _tally(20, {reason: 20}).check()
    message = str(error.value)
    assert message.startswith(read_failures.MESSAGE_PREFIX) and "\n" not in message
    assert f"20 of the 20 rows this worker read found their photo {word} under gs://bucket/ava/images" in message
    assert "403 Forbidden" in message and "--max_read_failure_fraction=0.05" in message and "Nothing was published" in message
    with pytest.raises(StorageFailure):
        _tally(300, {reason: 20}).check()  # 6.7%
    _tally(300, {reason: 19}).check()  # too few to judge
    _tally(1000, {reason: 20}).check()  # 2%


def test_waiting_between_tries_stops_once_most_reads_fail():
    assert not _tally(100, {Reason.UNREADABLE: 2}).failing
    assert _tally(6, {Reason.UNREADABLE: 4}).failing


def test_the_sample_read_before_the_build_judges_the_storage():
    ok = [(None, "")] * 40 + [(Reason.MISSING_FILE, "a.jpg: no such file")] * 24
    assert read_failures.judge_sample(ok, "/ava/images", LIMITS) == 64
    assert read_failures.judge_sample([], "/ava/images", LIMITS) == 0
    with pytest.raises(StorageFailure, match="33 of 64 photos sampled before the build found their photo unreadable"):
        read_failures.judge_sample([(None, "")] * 31 + [(Reason.UNREADABLE, "b.jpg: denied")] * 33, "/ava/images", LIMITS)


def _layout(root: pathlib.Path, breakage: str) -> pathlib.Path:
    """The sample's AVA layout with every photo a directory (what a worker that may not read
    them sees), or with every photo renamed so that AVA.txt names none of them."""
    ava_dir = root / "ava"
    sample.write_sample(str(ava_dir), num_images=400, seed=0)
    for photo in (ava_dir / "images").glob("*.jpg"):
        photo.unlink() if breakage == "unreadable" else photo.rename(photo.with_name(f"renamed-{photo.name}"))
        if breakage == "unreadable":
            photo.mkdir()
    return ava_dir


def _build(ava_dir: pathlib.Path, output_dir: pathlib.Path, *flags: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "beam_pipelines.build", "--config=256", f"--ava_dir={ava_dir}", f"--output_dir={output_dir}",
         "--direct_num_workers=2", *flags],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )


@pytest.mark.parametrize("breakage, cause", [
    ("unreadable", "error: storage failure, not bad data: "),
    ("missing", "error: None of the photos of the first 200 rows of "),
])
def test_a_build_whose_photos_cannot_be_read_stops_in_seconds_and_publishes_nothing(tmp_path, breakage, cause):
    ava_dir, output_dir = _layout(tmp_path, breakage), tmp_path / "tfds"
    start = time.monotonic()
    process = _build(ava_dir, output_dir)
    stdout, stderr = process.communicate(timeout=600)
    elapsed = time.monotonic() - start
    assert process.returncode == 1, stderr[-3000:]
    assert elapsed < SECONDS_TO_STOP, elapsed
    last = stderr.strip().splitlines()[-1] if breakage == "unreadable" else stderr.split(cause, 1)[-1]
    assert cause in stderr and "Dataset written" not in stdout
    if breakage == "unreadable":
        # Of the 64 rows sampled, a malformed or voteless one is no photo to read, and the
        # sample's planted missing photo is missing rather than unreadable.
        found = re.search(r"(\d+) of (\d+) photos sampled before the build found their photo unreadable", last)
        assert last.startswith(cause) and found and 60 <= int(found[1]) <= int(found[2]) <= 64, last
        assert f"under {ava_dir}/images" in last and "IsADirectoryError" in last
    assert not tfds.builder("ava/256", data_dir=str(output_dir)).is_prepared()


@pytest.fixture(scope="module", autouse=True)
def failing_mid_build(tmp_path_factory):
    """The build of the last test, started with the module's first: its workers spend most
    of their seconds waiting between tries of a read, which the other tests' builds use."""
    root = tmp_path_factory.mktemp("mid_build")
    ava_dir, output_dir, log = _layout(root, "unreadable"), root / "tfds", root / "stderr.txt"
    start = time.monotonic()
    with open(log, "w") as stderr:  # a file, not a pipe that nobody reads until the build ends
        process = _build(ava_dir, output_dir, "--read_sample_size=0", stderr=stderr)
    yield process, output_dir, log, start
    process.kill()


def test_a_worker_that_starts_failing_mid_build_stops_it(failing_mid_build):
    """The sample read passes (no photo is sampled: --read_sample_size=0), so the main
    pass's own tally must stop the build."""
    process, output_dir, log, start = failing_mid_build
    process.communicate(timeout=600)
    stderr = log.read_text()
    assert process.returncode == 1, stderr[-3000:]
    assert time.monotonic() - start < SECONDS_TO_STOP
    last = stderr.strip().splitlines()[-1]
    assert re.match(r"error: storage failure, not bad data: 20 of the 2\d rows this worker read found their photo unreadable", last), last
    assert not tfds.builder("ava/256", data_dir=str(output_dir)).is_prepared()
