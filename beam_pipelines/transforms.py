"""The Beam graph that turns an AVA directory into TFRecord shards, a rejection log and statistics.

Data flow (one pass over the inputs, shared by the three splits):

    AVA.txt --ReadFromText--> ParseRows --+                      +-> DecodeAndWrite --> shards per split
    generic_test.jpgl -----> ReadTestList -+-> GroupByKey(id) --> ResolveIds          (validate, re-encode,
                                                                 (dedupe, split,       write TFRecords in the
                                                                  not-in-index)         same step)
    shard list --> PackSmallShards --+
    example summaries ---------------+--> Finalize: rejected.jsonl, stats.json, eda.png, shards.json,
    every stage's dead-letter output -+    and a check that every row of AVA.txt ended exactly once

Image bytes never leave the step that decodes them: only rows (before) and small
summaries (after) cross a stage boundary, so no runner holds images in memory. The logic
lives in pure functions (`ava_index`, `images`, `shards`, `stats`); the DoFns here read
files, count and route.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MAX_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_pipelines import ava_index, images, progress, ratings, shards, stats
from beam_pipelines.rejections import Reason, RejectedInput, Rejection

METRICS_NAMESPACE = "ava"
REJECTED_FILE = "rejected.jsonl"
STATS_FILE = "stats.json"
EDA_FIGURE_FILE = "eda.png"
SHARD_LIST_FILE = "shards.json"  # read and removed by the builder, which names the shards
SHARD_DIR = "shards.incomplete"  # under the output dir; removed by the builder
READ_ATTEMPTS = 3
READ_RETRY_DELAYS_S = (0.5, 2.0)

_REJECTED, _SHARDS = "rejected", "shards"
_ROW, _LISTED_IN_TEST = "row", "listed_in_test"


@dataclasses.dataclass(frozen=True)
class AvaExample:
    """A validated row with its clean JPEG: everything a dataset example is made from."""

    split: str
    image_id: int
    image: bytes
    rating_counts: tuple[int, ...]
    semantic_tags: tuple[int, int]
    challenge_id: int


@dataclasses.dataclass(frozen=True)
class AvaRows:
    rows: beam.PCollection  # PCollection[(split, AvaRow)]: one per id, its split assigned
    rejected: beam.PCollection  # PCollection[Rejection]
    index_rows: beam.PCollection  # PCollection[int]: one element, non-blank lines of AVA.txt


@dataclasses.dataclass(frozen=True)
class WrittenExamples:
    summaries: beam.PCollection  # PCollection[stats.ExampleSummary], one per example
    shards: beam.PCollection  # PCollection[shards.ShardFile]
    rejected: beam.PCollection  # PCollection[Rejection]


def build(
    pipeline: beam.Pipeline,
    ava_dir: str,
    output_dir: str,
    policy: images.ImagePolicy,
    encode_example: Callable[[AvaExample], bytes],
    validation_fraction: float,
    num_tags: int | None = None,
    progress_dir: str | None = None,
    shard_bytes: int = shards.DEFAULT_SHARD_BYTES,
) -> None:
    """The whole build: shards under output_dir/SHARD_DIR, listed with the reports in output_dir."""
    output_dir = output_dir.rstrip("/")
    rows = read_ava(pipeline, ava_dir, validation_fraction, num_tags, progress_dir)
    written = rows.rows | "DecodeAndWrite" >> DecodeAndWrite(
        ava_dir, policy, encode_example, f"{output_dir}/{SHARD_DIR}", progress_dir, shard_bytes
    )
    write_reports(rows, written, output_dir)


def read_ava(
    pipeline: beam.Pipeline,
    ava_dir: str,
    validation_fraction: float,
    num_tags: int | None = None,
    progress_dir: str | None = None,
) -> AvaRows:
    """From AVA's files to one row per id with its split, and the rows rejected on the way."""
    ava_dir = ava_dir.rstrip("/")
    lines = pipeline | "ReadIndex" >> beam.io.ReadFromText(f"{ava_dir}/{ava_index.AVA_INDEX_FILE}")
    parsed = lines | "ParseRows" >> beam.ParDo(_ParseRowFn(num_tags, progress_dir)).with_outputs(_REJECTED, main="rows")
    index_rows = (
        lines
        | "NonBlank" >> beam.Filter(str.strip)
        | "CountRows" >> beam.combiners.Count.Globally()
    )
    test_list = f"{ava_dir}/{ava_index.TEST_LIST_FILE}"
    listed = (
        pipeline
        | "ReadTestList" >> beam.io.ReadFromText(test_list)
        | "ParseTestList" >> beam.FlatMap(_parse_listed_id, source=test_list)
    )
    resolved = (
        (
            parsed.rows | "KeyRows" >> beam.Map(lambda row: (row.image_id, (_ROW, row))),
            listed | "KeyListed" >> beam.Map(lambda image_id: (image_id, (_LISTED_IN_TEST, None))),
        )
        | "MergeById" >> beam.Flatten()
        | "GroupById" >> beam.GroupByKey()
        | "ResolveIds" >> beam.ParDo(_ResolveIdFn(validation_fraction, progress_dir)).with_outputs(_REJECTED, main="rows")
    )
    rejected = (parsed[_REJECTED], resolved[_REJECTED]) | "RowRejections" >> beam.Flatten()
    return AvaRows(rows=resolved.rows, rejected=rejected, index_rows=index_rows)


class DecodeAndWrite(beam.PTransform):
    """(split, AvaRow) -> example summaries, shard files (small ones packed), rejections."""

    def __init__(
        self,
        ava_dir: str,
        policy: images.ImagePolicy,
        encode_example: Callable[[AvaExample], bytes],
        shard_dir: str,
        progress_dir: str | None = None,
        shard_bytes: int = shards.DEFAULT_SHARD_BYTES,
    ):
        super().__init__()
        self._decode = _DecodeAndWriteFn(ava_dir.rstrip("/"), policy, encode_example, shard_dir, progress_dir, shard_bytes)
        self._shard_dir = shard_dir
        self._shard_bytes = shard_bytes

    def expand(self, rows: beam.PCollection) -> WrittenExamples:
        decoded = rows | "Decode" >> beam.ParDo(self._decode).with_outputs(_REJECTED, _SHARDS, main="summaries")
        packed = (
            decoded[_SHARDS]
            | "KeyBySplit" >> beam.Map(lambda shard: (shard.split, shard))
            | "GroupBySplit" >> beam.GroupByKey()
            | "PlanMerges" >> beam.FlatMap(lambda split_shards: shards.plan_merges(split_shards[1], self._shard_bytes))
            | "SpreadMerges" >> beam.Reshuffle()
            | "Merge" >> beam.Map(shards.merge, shard_dir=self._shard_dir)
        )
        return WrittenExamples(summaries=decoded.summaries, shards=packed, rejected=decoded[_REJECTED])


def write_reports(rows: AvaRows, written: WrittenExamples, output_dir: str) -> beam.PCollection:
    """Writes `rejected.jsonl` (sorted), `stats.json`, `eda.png` and `shards.json` into `output_dir`.

    Fails the build if any row of AVA.txt is not exactly one example or one rejection, or
    if the shards do not hold exactly the examples decoded: a runner that loses elements
    must not leave a dataset that looks complete. Only small records travel to the one
    worker that writes: an id, a reason, a vote count and a mean per input row, never an image.
    """
    rejected = (rows.rejected, written.rejected) | "Reports/AllRejected" >> beam.Flatten()
    return rows.index_rows | "Reports/Write" >> beam.Map(
        _write_reports,
        summaries=beam.pvalue.AsList(written.summaries),
        rejected=beam.pvalue.AsList(rejected),
        shard_files=beam.pvalue.AsList(written.shards),
        output_dir=output_dir.rstrip("/"),
    )


def _count(name: str) -> None:
    Metrics.counter(METRICS_NAMESPACE, name).inc()


class _SettlesRows(beam.DoFn):
    """A DoFn that decides rows' fates and reports each to the local progress bar, if any."""

    def __init__(self, progress_dir: str | None):
        self._progress_dir = progress_dir

    def _settled(self, outcome):
        if self._progress_dir:
            reporter = progress.ProgressReporter.for_dir(self._progress_dir)
            reporter.add(progress.REJECTED if isinstance(outcome, beam.pvalue.TaggedOutput) else progress.EXAMPLES)
        return outcome

    def finish_bundle(self):
        if self._progress_dir:
            progress.ProgressReporter.for_dir(self._progress_dir).flush()


def _reject(image_id: int | None, reason: Reason, detail: str) -> beam.pvalue.TaggedOutput:
    _count(f"rejected_{reason.value}")
    return beam.pvalue.TaggedOutput(_REJECTED, Rejection(image_id, reason, detail))


class _ParseRowFn(_SettlesRows):
    def __init__(self, num_tags: int | None, progress_dir: str | None):
        super().__init__(progress_dir)
        self._num_tags = num_tags

    def process(self, line: str):
        if not line.strip():
            return
        _count("index_rows")
        try:
            yield ava_index.parse_row(line, self._num_tags)
        except RejectedInput as error:
            yield self._settled(
                _reject(_leading_id(line) if error.reason == Reason.ZERO_VOTES else None, error.reason, error.detail)
            )


def _leading_id(line: str) -> int:
    return int(line.split()[1])


def _parse_listed_id(line: str, source: str) -> Iterator[int]:
    if line.strip():
        yield ava_index.parse_id_list(line, source)[0]


class _ResolveIdFn(_SettlesRows):
    """Keeps one row per id (the lowest AVA index), assigns its split, flags list-only ids."""

    def __init__(self, validation_fraction: float, progress_dir: str | None):
        super().__init__(progress_dir)
        self._validation_fraction = validation_fraction

    def process(self, element: tuple[int, Iterable[tuple[str, object]]]):
        image_id, tagged = element
        rows = sorted(
            (value for kind, value in tagged if kind == _ROW),
            key=lambda row: (row.index, row.rating_counts, row.semantic_tags, row.challenge_id),
        )
        in_test_list = any(kind == _LISTED_IN_TEST for kind, _ in tagged)
        if not rows:
            yield _reject(
                image_id, Reason.NOT_IN_INDEX, f"{ava_index.TEST_LIST_FILE} lists {image_id}, AVA.txt has no row for it"
            )
            return
        kept, *duplicates = rows
        for duplicate in duplicates:
            yield self._settled(_reject(
                image_id,
                Reason.DUPLICATE_ID,
                f"AVA.txt row with index {duplicate.index} repeats id {image_id} of row {kept.index}; the first row is kept",
            ))
        yield ava_index.assign_split(image_id, in_test_list, self._validation_fraction), kept


class _DecodeAndWriteFn(_SettlesRows):
    """Reads, validates and re-encodes each image and appends its example to this bundle's shards.

    Whatever one input raises ends as that input's rejection; only a failure to write
    the shards (the output) fails the bundle.
    """

    def __init__(
        self,
        ava_dir: str,
        policy: images.ImagePolicy,
        encode_example: Callable[[AvaExample], bytes],
        shard_dir: str,
        progress_dir: str | None,
        shard_bytes: int,
    ):
        super().__init__(progress_dir)
        self._ava_dir = ava_dir
        self._policy = policy
        self._encode_example = encode_example
        self._shard_dir = shard_dir
        self._shard_bytes = shard_bytes

    def start_bundle(self) -> None:
        self._writers: dict[str, shards.RollingShardWriter] = {}

    def process(self, element: tuple[str, ava_index.AvaRow]):
        split, row = element
        yield self._settled(self._decode(split, row))

    def finish_bundle(self):
        for writer in self._writers.values():
            for shard in writer.close():
                yield beam.pvalue.TaggedOutput(_SHARDS, WindowedValue(shard, MAX_TIMESTAMP, [GlobalWindow()]))
        super().finish_bundle()

    def _decode(self, split: str, row: ava_index.AvaRow):
        path = ava_index.image_path(self._ava_dir, row.image_id)
        try:
            clean = images.reencode(read_image(path), self._policy)
        except RejectedInput as error:
            detail = error.detail if error.detail.startswith(path) else f"{path}: {error.detail}"
            return _reject(row.image_id, error.reason, detail)
        _count_conversions(clean)
        record = self._encode_example(
            AvaExample(
                split=split,
                image_id=row.image_id,
                image=clean.jpeg,
                rating_counts=row.rating_counts,
                semantic_tags=row.semantic_tags,
                challenge_id=row.challenge_id,
            )
        )
        if split not in self._writers:
            self._writers[split] = shards.RollingShardWriter(self._shard_dir, split, self._shard_bytes)
        self._writers[split].write(record)
        _count(f"examples_{split}")
        mean, _ = ratings.mean_and_std(row.rating_counts)
        return stats.ExampleSummary(split, row.num_ratings, mean)


def read_image(path: str) -> bytes:
    """The file's bytes, read with up to READ_ATTEMPTS tries.

    Raises RejectedInput: MISSING_FILE when the path does not exist (each filesystem says
    "not found" its own way), UNREADABLE when it exists but every try failed (a
    directory, no permission, an object that keeps failing), with the last error.
    """
    error: Exception | None = None
    for attempt in range(READ_ATTEMPTS):
        try:
            return _read_bytes(path)
        except Exception as caught:  # noqa: BLE001 - any read failure is this input's, not the job's
            error = caught
        if not _exists(path):
            raise RejectedInput(Reason.MISSING_FILE, f"{path}: no such file ({type(error).__name__})")
        if attempt < len(READ_RETRY_DELAYS_S):
            time.sleep(READ_RETRY_DELAYS_S[attempt])
    raise RejectedInput(
        Reason.UNREADABLE, f"{path}: exists but {READ_ATTEMPTS} reads failed, the last with {type(error).__name__}: {error}"
    )


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        return file.read()


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - cannot tell: call it there, so that the read error is reported
        return True


def _count_conversions(clean: images.CleanImage) -> None:
    if clean.source_mode != "RGB" or clean.source_format != "JPEG":
        _count(f"converted_{clean.source_format}_{clean.source_mode}")
    for flag in ("exif_rotated", "broken_exif", "icc_converted", "broken_icc"):
        if getattr(clean, flag):
            _count(flag)


def _write_reports(
    num_index_rows: int,
    summaries: list[stats.ExampleSummary],
    rejected: list[Rejection],
    shard_files: list[shards.ShardFile],
    output_dir: str,
) -> None:
    rejected = sorted(rejected, key=lambda r: (r.reason.value, r.image_id or 0, r.detail))
    reasons = [r.reason.value for r in rejected]
    problems = stats.unaccounted(num_index_rows, summaries, reasons, shard_files)
    if problems:
        raise RuntimeError(
            "The build lost track of rows, so its output would be incomplete: " + "; ".join(problems)
            + ". Nothing was published. This is a fault of the runner, not of the data: run the build again "
            "(locally, --direct_num_workers=1 --direct_running_mode=in_memory is the safest)."
        )
    _write(f"{output_dir}/{REJECTED_FILE}", "".join(r.to_json() + "\n" for r in rejected).encode())
    summary = stats.summarize(summaries, reasons, num_index_rows)
    _write(f"{output_dir}/{STATS_FILE}", json.dumps(summary, indent=2, sort_keys=True).encode())
    _write(f"{output_dir}/{EDA_FIGURE_FILE}", stats.eda_figure_png(summaries))
    by_split = {
        split: [dataclasses.asdict(s) for s in sorted(shard_files) if s.split == split] for split in ava_index.SPLITS
    }
    _write(f"{output_dir}/{SHARD_LIST_FILE}", json.dumps(by_split, indent=1).encode())


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        file.write(data)
