"""The Beam graph that turns an AVA directory into validated examples and a rejection log.

Data flow (one pass over the inputs, shared by the three splits):

    AVA.txt --ReadFromText--> ParseRows --+                      +--> examples[train|validation|test]
    generic_test.jpgl -----> ReadTestList -+-> GroupByKey(id) --> ResolveIds --> DecodeImages
                                                                 (dedupe, split,   (validate,
                                                                  not-in-index)     re-encode)
    every stage's dead-letter output --> rejected.jsonl, Beam counters, stats.json, eda.png

The logic lives in pure functions (`ava_index`, `images`, `stats`); the DoFns here only
read files, count and route.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_pipelines import ava_index, images, ratings, stats
from beam_pipelines.rejections import Reason, RejectedInput, Rejection

METRICS_NAMESPACE = "ava"
REJECTED_FILE = "rejected.jsonl"
STATS_FILE = "stats.json"
EDA_FIGURE_FILE = "eda.png"

_REJECTED = "rejected"
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
class AvaOutputs:
    examples: dict[str, beam.PCollection]  # split -> PCollection[AvaExample]
    rejected: beam.PCollection  # PCollection[Rejection]
    index_rows: beam.PCollection  # PCollection[int]: one element, non-blank lines of AVA.txt


def read_ava(
    pipeline: beam.Pipeline,
    ava_dir: str,
    policy: images.ImagePolicy,
    validation_fraction: float,
    num_tags: int | None = None,
) -> AvaOutputs:
    """Builds the graph from AVA's files to examples per split and rejections."""
    ava_dir = ava_dir.rstrip("/")
    lines = pipeline | "ReadIndex" >> beam.io.ReadFromText(f"{ava_dir}/{ava_index.AVA_INDEX_FILE}")
    parsed = lines | "ParseRows" >> beam.ParDo(_ParseRowFn(num_tags)).with_outputs(_REJECTED, main="rows")
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
        | "ResolveIds" >> beam.ParDo(_ResolveIdFn(validation_fraction)).with_outputs(_REJECTED, main="rows")
    )
    decoded = resolved.rows | "DecodeImages" >> beam.ParDo(_DecodeImageFn(ava_dir, policy)).with_outputs(
        _REJECTED, main="examples"
    )
    by_split = decoded.examples | "BySplit" >> beam.Partition(
        lambda example, _: ava_index.SPLITS.index(example.split), len(ava_index.SPLITS)
    )
    rejected = (parsed[_REJECTED], resolved[_REJECTED], decoded[_REJECTED]) | "AllRejected" >> beam.Flatten()
    return AvaOutputs(
        examples=dict(zip(ava_index.SPLITS, by_split)), rejected=rejected, index_rows=index_rows
    )


def write_reports(outputs: AvaOutputs, output_dir: str) -> beam.PCollection:
    """Writes `rejected.jsonl` (sorted), `stats.json` and `eda.png` into `output_dir`.

    Only small summaries travel to the one worker that writes: an id, a reason, a vote
    count and a mean per input row, never an image.
    """
    summaries = (
        [outputs.examples[split] for split in ava_index.SPLITS]
        | "Reports/MergeSplits" >> beam.Flatten()
        | "Reports/SummarizeExamples" >> beam.Map(_summarize_example)
        | "Reports/CollectSummaries" >> beam.combiners.ToList()
    )
    rejected = outputs.rejected | "Reports/CollectRejected" >> beam.combiners.ToList()
    return outputs.index_rows | "Reports/Write" >> beam.Map(
        _write_reports,
        summaries=beam.pvalue.AsSingleton(summaries),
        rejected=beam.pvalue.AsSingleton(rejected),
        output_dir=output_dir.rstrip("/"),
    )


def _count(name: str) -> None:
    Metrics.counter(METRICS_NAMESPACE, name).inc()


def _reject(image_id: int | None, reason: Reason, detail: str) -> beam.pvalue.TaggedOutput:
    _count(f"rejected_{reason.value}")
    return beam.pvalue.TaggedOutput(_REJECTED, Rejection(image_id, reason, detail))


class _ParseRowFn(beam.DoFn):
    def __init__(self, num_tags: int | None):
        self._num_tags = num_tags

    def process(self, line: str):
        if not line.strip():
            return
        _count("index_rows")
        try:
            yield ava_index.parse_row(line, self._num_tags)
        except RejectedInput as error:
            yield _reject(_leading_id(line) if error.reason == Reason.ZERO_VOTES else None, error.reason, error.detail)


def _leading_id(line: str) -> int:
    return int(line.split()[1])


def _parse_listed_id(line: str, source: str) -> Iterator[int]:
    if line.strip():
        yield ava_index.parse_id_list(line, source)[0]


class _ResolveIdFn(beam.DoFn):
    """Keeps one row per id (the lowest AVA index), assigns its split, flags list-only ids."""

    def __init__(self, validation_fraction: float):
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
            yield _reject(
                image_id,
                Reason.DUPLICATE_ID,
                f"AVA.txt row with index {duplicate.index} repeats id {image_id} of row {kept.index}; the first row is kept",
            )
        yield ava_index.assign_split(image_id, in_test_list, self._validation_fraction), kept


class _DecodeImageFn(beam.DoFn):
    def __init__(self, ava_dir: str, policy: images.ImagePolicy):
        self._ava_dir = ava_dir
        self._policy = policy

    def process(self, element: tuple[str, ava_index.AvaRow]):
        split, row = element
        path = ava_index.image_path(self._ava_dir, row.image_id)
        try:
            with FileSystems.open(path) as file:
                data = file.read()
        except Exception as error:  # noqa: BLE001 - each filesystem has its own "not found" (gs://: NotFound)
            if FileSystems.exists(path):
                raise  # there but unreadable now (transient, permissions): Beam retries the bundle
            yield _reject(row.image_id, Reason.MISSING_FILE, f"{path}: no such file ({type(error).__name__})")
            return
        try:
            clean = images.reencode(data, self._policy)
        except RejectedInput as error:
            yield _reject(row.image_id, error.reason, f"{path}: {error.detail}")
            return
        if clean.source_mode != "RGB" or clean.source_format != "JPEG":
            _count(f"converted_{clean.source_format}_{clean.source_mode}")
        if clean.exif_rotated:
            _count("exif_rotated")
        if clean.broken_exif:
            _count("broken_exif")
        _count(f"examples_{split}")
        yield AvaExample(
            split=split,
            image_id=row.image_id,
            image=clean.jpeg,
            rating_counts=row.rating_counts,
            semantic_tags=row.semantic_tags,
            challenge_id=row.challenge_id,
        )


def _summarize_example(example: AvaExample) -> stats.ExampleSummary:
    mean, _ = ratings.mean_and_std(example.rating_counts)
    return stats.ExampleSummary(example.split, sum(example.rating_counts), mean)


def _write_reports(
    num_index_rows: int, summaries: list, rejected: list[Rejection], output_dir: str
) -> None:
    rejected = sorted(rejected, key=lambda r: (r.reason.value, r.image_id or 0, r.detail))
    _write(f"{output_dir}/{REJECTED_FILE}", "".join(r.to_json() + "\n" for r in rejected).encode())
    summary = stats.summarize(summaries, [r.reason.value for r in rejected], num_index_rows)
    _write(f"{output_dir}/{STATS_FILE}", json.dumps(summary, indent=2, sort_keys=True).encode())
    _write(f"{output_dir}/{EDA_FIGURE_FILE}", stats.eda_figure_png(summaries))


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as file:
        file.write(data)
