"""Descriptive statistics and the EDA figure of a built dataset (`stats.json`, `eda.png`).

Pure functions over small summaries (one tuple per input row), so the pipeline gathers
those on one worker and calls these; the tests call them directly.
"""

from __future__ import annotations

import collections
import io
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from beam_pipelines.rejections import Reason

ALL_SPLITS = "all"


class ExampleSummary(NamedTuple):
    split: str
    num_ratings: int
    mean_score: float


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


def summarize(
    examples: Iterable[ExampleSummary], rejected_reasons: Iterable[str], num_index_rows: int
) -> dict:
    """The content of `stats.json`: where every input went, and what the kept data looks like."""
    by_split: dict[str, list[ExampleSummary]] = collections.defaultdict(list)
    for example in examples:
        by_split[example.split].append(example)
        by_split[ALL_SPLITS].append(example)
    rejected = collections.Counter(rejected_reasons)
    statistics = {
        split: {
            "num_ratings": describe([e.num_ratings for e in rows]),
            "mean_score": describe([e.mean_score for e in rows]),
        }
        for split, rows in sorted(by_split.items())
    }
    return {
        "index_rows": num_index_rows,
        "examples": {split: len(rows) for split, rows in sorted(by_split.items()) if split != ALL_SPLITS},
        "rejected": {reason.value: rejected.get(reason.value, 0) for reason in Reason},
        "statistics": statistics,
    }


def unaccounted(
    num_index_rows: int,
    examples: Sequence[ExampleSummary],
    rejected_reasons: Sequence[str],
    shard_files: Iterable,
) -> list[str]:
    """What breaks "every row of AVA.txt ends exactly once, and the shards hold the examples".

    Each row is an example or one rejection; the test list's ids without a row
    (NOT_IN_INDEX) are rejections of no row. `shard_files` are `shards.ShardFile`s.
    Returns the problems found, as sentences; empty when the build is whole.
    """
    problems = []
    rejected_rows = sum(1 for reason in rejected_reasons if reason != Reason.NOT_IN_INDEX.value)
    if len(examples) + rejected_rows != num_index_rows:
        problems.append(
            f"AVA.txt has {num_index_rows} rows but {len(examples)} examples + {rejected_rows} rejected rows "
            f"= {len(examples) + rejected_rows}"
        )
    decoded = collections.Counter(example.split for example in examples)
    stored: collections.Counter = collections.Counter()
    for shard in shard_files:
        stored[shard.split] += shard.num_examples
    for split in sorted(set(decoded) | set(stored)):
        if decoded[split] != stored[split]:
            problems.append(f"split {split}: {decoded[split]} examples decoded, {stored[split]} in its shards")
    return problems


def eda_figure_png(examples: Sequence[ExampleSummary]) -> bytes:
    """Histograms of mean score and of votes per image, one colour per split."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (scores_axis, votes_axis) = plt.subplots(1, 2, figsize=(11, 4))
    splits = sorted({e.split for e in examples})
    for split in splits:
        rows = [e for e in examples if e.split == split]
        label = f"{split} ({len(rows)})"
        scores_axis.hist([e.mean_score for e in rows], bins=40, range=(1, 10), alpha=0.5, label=label)
        votes_axis.hist([e.num_ratings for e in rows], bins=40, alpha=0.5, label=label)
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
    columns = ("count", "mean", "sd", "min", "q1", "median", "q3", "max")
    lines.append(f"{'split':<11} {'feature':<12}" + "".join(f"{c:>9}" for c in columns))
    for split, features in summary["statistics"].items():
        for feature, described in features.items():
            values = "".join(
                f"{described[c]:>9d}" if c == "count" else f"{described.get(c, float('nan')):>9.2f}" for c in columns
            )
            lines.append(f"{split:<11} {feature:<12}{values}")
    return "\n".join(lines) + "\n"
