"""Descriptive statistics and the EDA figure of a built dataset (`stats.json`, `eda.png`).

Pure functions over per-split columns (votes per image, mean score), gathered compactly:
`ExampleColumns` holds them as typed arrays (4 bytes a value), so all of AVA's 255,530
examples cost about 2 MB wherever they travel, and the build's memory stays flat. Beside
them, each split's sum of vote distributions: the training split's mean distribution is
the baseline every model must beat, which evaluation reads from `stats.json` rather than
from another pass over the training split (about 5 GB on all of AVA).
"""

from __future__ import annotations

import array
import collections
import dataclasses
import io
from typing import Iterable, Mapping, Sequence

import numpy as np

from ava_core import pages
from ava_core.rejections import Reason, Rejection

ALL_SPLITS = "all"
STATS_FILE = "stats.json"
MEAN_DISTRIBUTION = "mean_rating_distribution"  # stats.json: per split, the mean of its examples' vote distributions
DESCRIBED = ("count", "mean", "sd", "min", "q1", "median", "q3", "max")  # `describe`'s figures, in the order shown
REJECTION_EXAMPLES = 5  # rejections the report page shows of each reason (rejected.jsonl lists them all)


class ExampleColumns:
    """Per split: the number of votes and the mean score of every example, as typed arrays."""

    def __init__(self) -> None:
        self._num_ratings: dict[str, array.array] = {}
        self._mean_scores: dict[str, array.array] = {}
        self._distribution_sums: dict[str, np.ndarray] = {}

    def add(self, split: str, num_ratings: int, mean_score: float, distribution: Sequence[float]) -> None:
        self._begin(split, len(distribution))
        self._num_ratings[split].append(num_ratings)
        self._mean_scores[split].append(mean_score)
        self._distribution_sums[split] += np.asarray(distribution, np.float64)

    def merge(self, other: "ExampleColumns") -> "ExampleColumns":
        for split in other._num_ratings:
            self._begin(split, len(other._distribution_sums[split]))
            self._num_ratings[split].extend(other._num_ratings[split])
            self._mean_scores[split].extend(other._mean_scores[split])
            self._distribution_sums[split] += other._distribution_sums[split]
        return self

    def mean_distribution(self, split: str) -> list[float]:
        """The mean of the split's vote distributions, renormalised to sum to 1."""
        total = self._distribution_sums[split]
        return (total / total.sum()).tolist()

    def _begin(self, split: str, num_bins: int) -> None:
        if split not in self._num_ratings:
            self._num_ratings[split], self._mean_scores[split] = array.array("i"), array.array("f")
            self._distribution_sums[split] = np.zeros(num_bins, np.float64)

    def splits(self) -> list[str]:
        return sorted(self._num_ratings)

    def counts(self) -> dict[str, int]:
        return {split: len(values) for split, values in sorted(self._num_ratings.items())}

    def num_ratings(self, split: str = ALL_SPLITS) -> np.ndarray:
        return self._column(self._num_ratings, split, np.int32)

    def mean_scores(self, split: str = ALL_SPLITS) -> np.ndarray:
        return self._column(self._mean_scores, split, np.float32)

    @staticmethod
    def _column(columns: dict[str, array.array], split: str, dtype) -> np.ndarray:
        chosen = columns.values() if split == ALL_SPLITS else [columns.get(split, array.array(np.dtype(dtype).char))]
        arrays = [np.frombuffer(values, dtype=dtype) for values in chosen if len(values)]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def describe(values: Sequence[float]) -> dict[str, float]:
    """count, mean, sd, min, quartiles and max, as the project report tabulates them.

    sd is the sample deviation and the quartiles are linear (R's defaults, which the
    report used), so the numbers are comparable with it.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "max": float(values.max()),
    }


def summarize(columns: ExampleColumns, rejected_reasons: Iterable[str], num_index_rows: int) -> dict:
    """The content of `stats.json`: where every input went, and what the kept data looks like."""
    rejected = collections.Counter(rejected_reasons)
    splits = columns.splits() + ([ALL_SPLITS] if columns.splits() else [])
    statistics = {
        split: {
            "num_ratings": describe(columns.num_ratings(split)),
            "mean_score": describe(columns.mean_scores(split).astype(np.float64)),
        }
        for split in sorted(splits)
    }
    return {
        "index_rows": num_index_rows,
        "examples": columns.counts(),
        "rejected": {reason.value: rejected.get(reason.value, 0) for reason in Reason},
        "statistics": statistics,
        MEAN_DISTRIBUTION: {split: columns.mean_distribution(split) for split in columns.splits()},
    }


def unaccounted(
    num_index_rows: int,
    examples_per_split: Mapping[str, int],
    rejected_reasons: Sequence[str],
    shard_files: Iterable,
) -> list[str]:
    """What breaks "every row of AVA.txt ends exactly once, and the shards hold the examples".

    Each row is an example or one rejection; the test list's ids without a row
    (NOT_IN_INDEX) are rejections of no row. `shard_files` are `shards.ShardFile`s.
    Returns the problems found, as sentences; empty when the build is whole.
    """
    problems = []
    num_examples = sum(examples_per_split.values())
    rejected_rows = sum(1 for reason in rejected_reasons if reason != Reason.NOT_IN_INDEX.value)
    if num_examples + rejected_rows != num_index_rows:
        problems.append(
            f"AVA.txt has {num_index_rows} rows but {num_examples} examples + {rejected_rows} rejected rows "
            f"= {num_examples + rejected_rows}"
        )
    stored: collections.Counter = collections.Counter()
    for shard in shard_files:
        stored[shard.split] += shard.num_examples
    for split in sorted(set(examples_per_split) | set(stored)):
        if examples_per_split.get(split, 0) != stored[split]:
            problems.append(f"split {split}: {examples_per_split.get(split, 0)} examples decoded, {stored[split]} in its shards")
    return problems


def eda_figure_png(columns: ExampleColumns) -> bytes:
    """Histograms of mean score and of votes per image, one colour per split."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (scores_axis, votes_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for split, count in columns.counts().items():
        label = f"{split} ({count})"
        scores_axis.hist(columns.mean_scores(split), bins=40, range=(1, 10), alpha=0.5, label=label)
        votes_axis.hist(columns.num_ratings(split), bins=40, alpha=0.5, label=label)
    scores_axis.set(title="Mean score per image", xlabel="mean score (1..10)", ylabel="images")
    votes_axis.set(title="Votes per image", xlabel="number of votes", ylabel="images")
    for axis in (scores_axis, votes_axis):
        axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def format_summary(summary: dict) -> str:
    """`stats.json` as a person reads it: where the rows went, then the statistics per split."""
    lines = [f"AVA.txt rows: {summary['index_rows']}"]
    lines.append("examples: " + ", ".join(f"{split} {count}" for split, count in summary["examples"].items()))
    rejected = {reason: count for reason, count in summary["rejected"].items() if count}
    lines.append("rejected: " + (", ".join(f"{reason} {count}" for reason, count in rejected.items()) or "none"))
    columns = DESCRIBED
    lines.append(f"{'split':<11} {'feature':<12}" + "".join(f"{c:>9}" for c in columns))
    for split, features in summary["statistics"].items():
        for feature, described in features.items():
            values = "".join(
                f"{described[c]:>9d}" if c == "count" else f"{described.get(c, float('nan')):>9.2f}" for c in columns
            )
            lines.append(f"{split:<11} {feature:<12}{values}")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Photo:
    """An accepted example as the report page shows it: a thumbnail of its stored image."""

    image_id: int
    mean_score: float
    thumbnail: bytes  # `ava_core.pages.thumbnail`


def report_page(summary: dict, rejected: Sequence[Rejection], photos: Mapping[str, Sequence[Photo]], eda_figure: str) -> str:
    """`report.html`: `stats.json` (`summary`) with the EDA figure, the rejections by reason
    with a few of each, and a few accepted photos per split (the smallest ids), their
    thumbnails inside the page so that it can be opened from a bucket or moved alone."""
    by_reason: dict[str, list[Rejection]] = collections.defaultdict(list)
    for rejection in rejected:
        by_reason[rejection.reason.value].append(rejection)
    buffer = io.StringIO()
    pages.write_page(
        buffer, "build_report.html.j2",
        title=f"The build: {sum(summary['examples'].values())} examples from {summary['index_rows']} rows of AVA.txt",
        summary=summary,
        columns=DESCRIBED,
        rejections=[
            {"reason": reason, "count": count, "examples": by_reason[reason][:REJECTION_EXAMPLES]}
            for reason, count in summary["rejected"].items() if count
        ],
        photos={
            split: [{"image_id": p.image_id, "mean_score": p.mean_score, "thumbnail": pages.data_uri(p.thumbnail)}
                    for p in sorted(chosen, key=lambda p: p.image_id)]
            for split, chosen in sorted(photos.items())
        },
        eda_figure=eda_figure,
    )
    return buffer.getvalue()
