"""The Beam graph that turns an AVA directory into TFRecord shards, a rejection log and statistics.

Data flow:

    AVA.txt --ReadAllFromText (byte ranges, reshuffled)--> DecodeAndWrite: parse the row, drop
                                                          repeated ids, assign the split,
                                                          validate and re-encode the image,
                                                          append it to this bundle's shards
    AVA.txt --ReadFromText--> TallyIds (one global combine) --+-- side inputs: the rows to
    generic_test.jpgl --ReadTestList--------------------------+   keep of repeated ids, the
                                                                   test list; rejections of
                                                                   listed ids with no row
    shard list --> PackSmallShards --+
    example statistics (combined) ---+--> Finalize: rejected.jsonl, stats.json, eda.png,
    every stage's dead-letter output -+    shards.json, and the check that every row of
                                           AVA.txt ended exactly once

No stage boundary carries data that grows with AVA beyond a few bytes a row: the image
bytes stay in the step that decodes them, rows are read where they are decoded (only the
byte ranges of AVA.txt are reshuffled), and what the finalize step needs arrives combined
(ids as int64 arrays, statistics as typed columns). The local runners hold a grouping's
data in memory, so this keeps the build's memory flat from 400 photos to all of AVA.
The logic lives in pure functions (`ava_index`, `images`, `shards`, `stats`); the DoFns
here read files, count and route.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import io
import json
import time
from typing import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MAX_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from PIL import Image

from ava_core import ava_index, images, pages
from ava_core.read_failures import ReadFailureLimits, ReadTally, judge_sample
from ava_tfds.ava import features, progress, shards, stats
from ava_core.rejections import Reason, RejectedInput, Rejection

METRICS_NAMESPACE = "ava"
REJECTED_FILE = "rejected.jsonl"
EDA_FIGURE_FILE = "eda.png"
SHARD_LIST_FILE = "shards.json"  # read and removed by the builder, which names the shards
REPORT_PAGE = "report.html"  # stats.json, the rejections and a few photos, to look at
REPORT_PHOTOS_PER_SPLIT = 6
SHARD_DIR = "shards.incomplete"  # under the output dir; removed by the builder
READ_ATTEMPTS = 3
READ_RETRY_DELAYS_S = (0.5, 2.0)
INDEX_RANGE_BYTES = 32 << 10  # ~700 rows of AVA.txt per range: many more ranges than workers

_REJECTED, _SHARDS, _PHOTOS = "rejected", "shards", "photos"


class ReadFailureOptions(PipelineOptions):
    """When read failures mean broken storage rather than bad photos (`ava_core.read_failures`)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        defaults = ReadFailureLimits()
        parser.add_argument(
            "--max_read_failure_fraction", type=float, default=defaults.max_fraction,
            help="Stop the build when more than this share of a worker's rows (once "
                 f"{defaults.min_failures} have) find their photo missing, or unreadable.",
        )
        parser.add_argument(
            "--read_sample_size", type=int, default=defaults.sample_size,
            help="Photos the workers read before the main pass; the build stops when most of them fail (0: no such check).",
        )

    def limits(self) -> ReadFailureLimits:
        return dataclasses.replace(ReadFailureLimits(), max_fraction=self.max_read_failure_fraction, sample_size=self.read_sample_size)


@dataclasses.dataclass(frozen=True)
class IdTally:
    """What the whole of AVA.txt says about ids, for the rows that cannot tell alone.

    ids: every id of a valid row, sorted and unique (int64).
    kept_index: for each id on more than one valid row, the AVA index of the row kept
        (the lowest), or None when two of its rows share that index too (a repeated line:
        no copy can tell that it is the first, so all are rejected).
    """

    ids: np.ndarray
    kept_index: dict[int, int | None]


@dataclasses.dataclass(frozen=True)
class WrittenExamples:
    columns: beam.PCollection  # one stats.ExampleColumns of every example
    shards: beam.PCollection  # PCollection[shards.ShardFile]
    rejected: beam.PCollection  # PCollection[Rejection]
    photos: beam.PCollection  # PCollection[(split, [stats.Photo])]: the report's, the smallest ids of each split


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """What one build reads, how it decodes and where it writes: set by the builder, carried
    whole to the workers' DoFn.

    num_tags: the tags TAGS.txt defines (rows naming others are malformed), None to accept
    any; progress_dir: where a local build's workers report progress, None on remote runners.
    """

    ava_dir: str
    output_dir: str
    policy: images.ImagePolicy
    validation_fraction: float
    num_tags: int | None = None
    progress_dir: str | None = None
    shard_bytes: int = shards.DEFAULT_SHARD_BYTES
    read_limits: ReadFailureLimits = ReadFailureLimits()

    def __post_init__(self):
        object.__setattr__(self, "ava_dir", self.ava_dir.rstrip("/"))
        object.__setattr__(self, "output_dir", self.output_dir.rstrip("/"))

    @property
    def shard_dir(self) -> str:
        return f"{self.output_dir}/{SHARD_DIR}"


def build(pipeline: beam.Pipeline, settings: BuildSettings) -> None:
    """The whole build: shards under output_dir/SHARD_DIR, listed with the reports in output_dir.

    No row is decoded before a sample of the index's photos was read on the workers
    (`ReadSample`): a storage failure stops the build there, in seconds.
    """
    ava_dir, output_dir, read_limits = settings.ava_dir, settings.output_dir, settings.read_limits
    index_path = f"{ava_dir}/{ava_index.AVA_INDEX_FILE}"
    test_list = f"{ava_dir}/{ava_index.TEST_LIST_FILE}"
    whole_index = pipeline | "ReadIndex" >> beam.io.ReadFromText(index_path)
    index_rows = whole_index | "NonBlank" >> beam.Filter(str.strip) | "CountRows" >> beam.combiners.Count.Globally()
    tally = (
        whole_index
        | "IdsAndIndices" >> beam.FlatMap(_id_and_index, num_tags=settings.num_tags)
        | "TallyIds" >> beam.CombineGlobally(_IdTallyFn())
    )
    # Read whole and now, not line by line in the pipeline: an error names the line of the
    # file, and comes before any work is done.
    with FileSystems.open(test_list, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        listed_ids = ava_index.parse_id_list(file.read().decode(), test_list)
    listed = pipeline | "TestList" >> beam.Create(listed_ids)
    not_in_index = tally | "NotInIndex" >> beam.FlatMap(_not_in_index, listed=beam.pvalue.AsList(listed))
    sample_read = (
        whole_index
        | "SampleRows" >> beam.combiners.Sample.FixedSizeGlobally(read_limits.sample_size)
        | "ReadSample" >> beam.Map(_read_sample, ava_dir=ava_dir, limits=read_limits)
    )
    lines = (
        pipeline
        | "IndexPath" >> beam.Create([index_path])
        | "ReadIndexRanges" >> beam.io.ReadAllFromText(desired_bundle_size=INDEX_RANGE_BYTES)
    )
    written = lines | "DecodeAndWrite" >> DecodeAndWrite(
        settings,
        listed=beam.pvalue.AsList(listed),
        kept_index=beam.pvalue.AsSingleton(tally | "KeptIndex" >> beam.Map(lambda t: t.kept_index)),
        sample_read=beam.pvalue.AsSingleton(sample_read),
    )
    rejected = (not_in_index, written.rejected) | "AllRejected" >> beam.Flatten()
    write_reports(index_rows, written, rejected, output_dir)


class DecodeAndWrite(beam.PTransform):
    """Lines of AVA.txt -> example columns, shard files (small ones packed), rejections."""

    def __init__(
        self,
        settings: BuildSettings,
        listed: beam.pvalue.AsSideInput,
        kept_index: beam.pvalue.AsSideInput,
        sample_read: beam.pvalue.AsSideInput,
    ):
        super().__init__()
        self._settings = settings
        self._side_inputs = {"listed": listed, "kept_index": kept_index, "sample_read": sample_read}

    def expand(self, lines):
        """-> WrittenExamples, unannotated: Beam reads an expand's annotation as a PCollection type hint."""
        shard_bytes, shard_dir = self._settings.shard_bytes, self._settings.shard_dir
        decoded = lines | "Decode" >> beam.ParDo(_DecodeAndWriteFn(self._settings), **self._side_inputs).with_outputs(
            _REJECTED, _SHARDS, _PHOTOS, main="columns"
        )
        packed = (
            decoded[_SHARDS]
            | "KeyBySplit" >> beam.Map(lambda shard: (shard.split, shard))
            | "GroupBySplit" >> beam.GroupByKey()
            | "PlanMerges" >> beam.FlatMap(lambda split_shards: shards.plan_merges(split_shards[1], shard_bytes))
            | "SpreadMerges" >> beam.Reshuffle()
            | "Merge" >> beam.Map(shards.merge, shard_dir=shard_dir)
        )
        columns = decoded.columns | "CombineColumns" >> beam.CombineGlobally(_MergeColumnsFn())
        photos = decoded[_PHOTOS] | "ReportPhotos" >> beam.combiners.Top.SmallestPerKey(
            REPORT_PHOTOS_PER_SPLIT, key=lambda photo: photo.image_id
        )
        return WrittenExamples(columns=columns, shards=packed, rejected=decoded[_REJECTED], photos=photos)


def write_reports(
    index_rows: beam.PCollection, written: WrittenExamples, rejected: beam.PCollection, output_dir: str
) -> beam.PCollection:
    """Writes `rejected.jsonl` (sorted), `stats.json`, `eda.png`, `report.html` and
    `shards.json` into `output_dir`.

    Fails the build if any row of AVA.txt is not exactly one example or one rejection, or
    if the shards do not hold exactly the examples decoded: a runner that loses elements
    must not leave a dataset that looks complete. (Beam's FnApiRunner with 2 workers under
    multi_processing has lost elements of large PCollections that a later stage with a side
    input consumed: 14,208 of 160,000 examples in one build of the earlier graph, and in a
    pure-Beam reproduction with no project code; see benchmarks/RESULTS.md. This graph
    passes no large PCollection between stages, and this check guards the rest.)
    """
    return index_rows | "Reports/Write" >> beam.Map(
        _write_reports,
        columns=beam.pvalue.AsSingleton(written.columns),
        rejected=beam.pvalue.AsList(rejected),
        shard_files=beam.pvalue.AsList(written.shards),
        photos=beam.pvalue.AsList(written.photos),
        output_dir=output_dir.rstrip("/"),
    )


def _count(name: str) -> None:
    _counter(name).inc()


@functools.lru_cache(maxsize=None)
def _counter(name: str):
    """Made once a name and process, as Beam's counters are meant to be, not once a row."""
    return Metrics.counter(METRICS_NAMESPACE, name)


def _reject(image_id: int | None, reason: Reason, detail: str) -> beam.pvalue.TaggedOutput:
    _count(f"rejected_{reason.value}")
    return beam.pvalue.TaggedOutput(_REJECTED, Rejection(image_id, reason, detail))


def _id_and_index(line: str, num_tags: int | None) -> Iterator[tuple[int, int]]:
    """(id, AVA index) of a valid row; invalid rows are rejected where they are decoded."""
    if not line.strip():
        return
    try:
        row = ava_index.parse_row(line, num_tags)
    except RejectedInput:
        return
    yield row.image_id, row.index


class _IdTallyFn(beam.CombineFn):
    """(id, index) pairs -> IdTally, accumulated as int64 arrays (16 bytes a row)."""

    def create_accumulator(self) -> tuple[array.array, array.array]:
        return array.array("q"), array.array("q")

    def add_input(self, accumulator, id_and_index):
        accumulator[0].append(id_and_index[0])
        accumulator[1].append(id_and_index[1])
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for ids, indices in accumulators:
            merged[0].extend(ids)
            merged[1].extend(indices)
        return merged

    def extract_output(self, accumulator) -> IdTally:
        ids = np.frombuffer(accumulator[0], dtype=np.int64)
        indices = np.frombuffer(accumulator[1], dtype=np.int64)
        order = np.lexsort((indices, ids))
        ids, indices = ids[order], indices[order]
        unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
        kept_index = {
            int(image_id): (None if indices[start] == indices[start + 1] else int(indices[start]))
            for image_id, start, count in zip(unique, first, counts)
            if count > 1
        }
        return IdTally(ids=unique, kept_index=kept_index)


def _not_in_index(tally: IdTally, listed: list[int]) -> Iterator[Rejection]:
    listed_ids = np.unique(np.asarray(listed, dtype=np.int64))
    for image_id in listed_ids[~np.isin(listed_ids, tally.ids)].tolist():
        yield _reject(
            image_id, Reason.NOT_IN_INDEX, f"{ava_index.TEST_LIST_FILE} lists {image_id}, AVA.txt has no row for it"
        ).value


class _MergeColumnsFn(beam.CombineFn):
    def create_accumulator(self) -> stats.ExampleColumns:
        return stats.ExampleColumns()

    def add_input(self, accumulator: stats.ExampleColumns, columns: stats.ExampleColumns) -> stats.ExampleColumns:
        return accumulator.merge(columns)

    def merge_accumulators(self, accumulators) -> stats.ExampleColumns:
        merged = stats.ExampleColumns()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: stats.ExampleColumns) -> stats.ExampleColumns:
        return accumulator


class _DecodeAndWriteFn(beam.DoFn):
    """One line of AVA.txt to an example in this bundle's shards, or to a rejection.

    Whatever one input raises ends as that input's rejection; only a failure to write
    the shards (the output), or reads failing wholesale (`ReadTally`: the storage, not the
    data), fails the bundle. Its main output is one ExampleColumns per bundle (the
    statistics of its examples), emitted with the bundle's shard files.
    """

    def __init__(self, settings: BuildSettings):
        self._settings = settings

    def setup(self) -> None:
        self._reads = ReadTally(self._settings.read_limits, f"{self._settings.ava_dir}/{ava_index.IMAGES_DIR}")

    def start_bundle(self) -> None:
        self._writers: dict[str, shards.RollingShardWriter] = {}
        self._columns = stats.ExampleColumns()
        self._listed: frozenset[int] | None = None
        self._photos: dict[str, list[tuple[int, float, bytes]]] = {}  # the bundle's smallest ids: the report's candidates

    def process(self, line: str, listed: list[int], kept_index: dict[int, int | None], sample_read: int):
        if not line.strip():
            return
        _count("index_rows")
        if self._listed is None:
            self._listed = frozenset(listed)
        outcome = self._settle(line, kept_index)
        if self._settings.progress_dir:
            reporter = progress.ProgressReporter.for_dir(self._settings.progress_dir)
            reporter.add(progress.REJECTED if outcome is not None else progress.EXAMPLES)
        if outcome is not None:
            yield outcome

    def finish_bundle(self):
        for writer in self._writers.values():
            for shard in writer.close():
                yield beam.pvalue.TaggedOutput(_SHARDS, _in_global_window(shard))
        if self._columns.splits():
            yield _in_global_window(self._columns)
        for split, chosen in self._photos.items():
            for image_id, mean, jpeg in chosen:
                photo = stats.Photo(image_id, mean, pages.thumbnail(Image.open(io.BytesIO(jpeg))))
                yield beam.pvalue.TaggedOutput(_PHOTOS, _in_global_window((split, photo)))
        if self._settings.progress_dir:
            progress.ProgressReporter.for_dir(self._settings.progress_dir).flush()

    def _settle(self, line: str, kept_index: dict[int, int | None]) -> beam.pvalue.TaggedOutput | None:
        """Writes the row's example and returns None, or returns its rejection."""
        try:
            row = ava_index.parse_row(line, self._settings.num_tags)
        except RejectedInput as error:
            return _reject(_leading_id(line) if error.reason == Reason.ZERO_VOTES else None, error.reason, error.detail)
        if row.image_id in kept_index and kept_index[row.image_id] != row.index:
            kept = kept_index[row.image_id]
            detail = (
                f"AVA.txt row with index {row.index} repeats id {row.image_id} of row {kept}; the first row is kept"
                if kept is not None
                else f"id {row.image_id} is on several rows with the same index {row.index}: none can be told the first, none is kept"
            )
            return _reject(row.image_id, Reason.DUPLICATE_ID, detail)
        split = ava_index.assign_split(row.image_id, row.image_id in self._listed, self._settings.validation_fraction)
        path = ava_index.image_path(self._settings.ava_dir, row.image_id)
        try:
            data = read_image(path, patient=not self._reads.failing)
        except RejectedInput as error:
            self._reads.record(error.reason, error.detail)
            self._reads.check()
            return _reject(row.image_id, error.reason, error.detail)
        self._reads.record(None)
        try:
            clean = images.reencode(data, self._settings.policy)
        except RejectedInput as error:
            detail = error.detail if error.detail.startswith(path) else f"{path}: {error.detail}"
            return _reject(row.image_id, error.reason, detail)
        _count_conversions(clean)
        values = features.to_features(
            ava_index.AvaExample(
                split=split,
                image_id=row.image_id,
                image=clean.jpeg,
                rating_counts=row.rating_counts,
                semantic_tags=row.semantic_tags,
                challenge_id=row.challenge_id,
            )
        )
        if split not in self._writers:
            self._writers[split] = shards.RollingShardWriter(self._settings.shard_dir, split, self._settings.shard_bytes)
        self._writers[split].write(features.serialize(values))
        _count(f"examples_{split}")
        mean = values[features.MEAN_SCORE]
        self._columns.add(split, values[features.NUM_RATINGS], mean, values[features.RATING_DISTRIBUTION])
        self._keep_for_report(split, row.image_id, mean, clean.jpeg)
        return None

    def _keep_for_report(self, split: str, image_id: int, mean: float, jpeg: bytes) -> None:
        """Keeps the bundle's REPORT_PHOTOS_PER_SPLIT smallest ids of `split`; their
        thumbnails are made once, when the bundle ends."""
        chosen = self._photos.setdefault(split, [])
        if len(chosen) < REPORT_PHOTOS_PER_SPLIT:
            chosen.append((image_id, mean, jpeg))
        elif image_id < max(chosen)[0]:
            chosen.remove(max(chosen))
            chosen.append((image_id, mean, jpeg))


def _leading_id(line: str) -> int:
    return int(line.split()[1])


def _in_global_window(value) -> WindowedValue:
    return WindowedValue(value, MAX_TIMESTAMP, [GlobalWindow()])


def read_image(path: str, patient: bool = True) -> bytes:
    """The file's bytes, read with up to READ_ATTEMPTS tries, waiting READ_RETRY_DELAYS_S
    between them when `patient` (not while most reads fail: waiting only delays the verdict).

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
        if patient and attempt < len(READ_RETRY_DELAYS_S):
            time.sleep(READ_RETRY_DELAYS_S[attempt])
    raise RejectedInput(
        Reason.UNREADABLE, f"{path}: exists but {READ_ATTEMPTS} reads failed, the last with {type(error).__name__}: {error}"
    )


def _read_sample(lines: list[str], ava_dir: str, limits: ReadFailureLimits) -> int:
    """Reads the photos of the sampled rows once each, on a worker; raises StorageFailure
    when most fail (`judge_sample`), before the main pass reads any. Returns how many were read."""
    results = []
    for line in lines:
        try:
            image_id = ava_index.parse_row(line, None).image_id
        except RejectedInput:
            continue  # a bad row is the main pass's to reject
        path = ava_index.image_path(ava_dir, image_id)
        try:
            read_image(path, patient=False)
            results.append((None, ""))
        except RejectedInput as error:
            results.append((error.reason, error.detail))
    return judge_sample(results, f"{ava_dir}/{ava_index.IMAGES_DIR}", limits)


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
    columns: stats.ExampleColumns,
    rejected: list[Rejection],
    shard_files: list[shards.ShardFile],
    photos: list[tuple[str, list[stats.Photo]]],
    output_dir: str,
) -> None:
    rejected = sorted(rejected, key=lambda r: (r.reason.value, r.image_id or 0, r.detail))
    reasons = [r.reason.value for r in rejected]
    problems = stats.unaccounted(num_index_rows, columns.counts(), reasons, shard_files)
    if problems:
        raise RuntimeError(
            "The build lost track of rows, so its output would be incomplete: " + "; ".join(problems)
            + ". Nothing was published. This is a fault of the runner, not of the data: run the build again "
            "(locally, --direct_num_workers=1 --direct_running_mode=in_memory is the safest)."
        )
    _write(f"{output_dir}/{REJECTED_FILE}", "".join(r.to_json() + "\n" for r in rejected).encode())
    summary = stats.summarize(columns, reasons, num_index_rows)
    _write(f"{output_dir}/{stats.STATS_FILE}", json.dumps(summary, indent=2, sort_keys=True).encode())
    _write(f"{output_dir}/{EDA_FIGURE_FILE}", stats.eda_figure_png(columns))
    page = stats.report_page(summary, rejected, dict(photos), EDA_FIGURE_FILE)
    _write(f"{output_dir}/{REPORT_PAGE}", page.encode())
    by_split = {
        split: [dataclasses.asdict(s) for s in sorted(shard_files) if s.split == split] for split in ava_index.SPLITS
    }
    _write(f"{output_dir}/{SHARD_LIST_FILE}", json.dumps(by_split, indent=1).encode())


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        file.write(data)
