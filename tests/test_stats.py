"""The descriptive statistics of stats.json against pandas, and the summary's accounting."""

import pickle

import numpy as np
import pandas as pd
import pytest

from ava_tfds.ava import stats
from ava_core.rejections import Reason
from ava_tfds.ava.shards import ShardFile


def test_describe_matches_pandas():
    values = np.random.default_rng(0).gamma(11.7, 18, size=1001)
    ours = stats.describe(values)
    reference = pd.Series(values).describe()
    for ours_key, pandas_key in [("count", "count"), ("mean", "mean"), ("sd", "std"), ("min", "min"),
                                 ("q1", "25%"), ("median", "50%"), ("q3", "75%"), ("max", "max")]:
        assert ours[ours_key] == pytest.approx(reference[pandas_key]), ours_key


def test_describe_of_nothing_and_of_one():
    assert stats.describe([]) == {"count": 0}
    assert stats.describe([4.0])["sd"] == 0.0


def _columns(*examples) -> stats.ExampleColumns:
    columns = stats.ExampleColumns()
    for split, num_ratings, mean, *distribution in examples:
        columns.add(split, num_ratings, mean, distribution[0] if distribution else [0.1] * 10)
    return columns


def test_columns_merge_and_read_back_per_split_and_in_all():
    first, second = _columns(("train", 100, 5.25), ("test", 150, 4.0)), _columns(("train", 200, 6.5))
    merged = stats.ExampleColumns().merge(first).merge(second)
    assert merged.counts() == {"test": 1, "train": 2}
    assert merged.num_ratings("train").tolist() == [100, 200]
    assert merged.mean_scores("train").tolist() == [5.25, 6.5]
    assert sorted(merged.num_ratings().tolist()) == [100, 150, 200]
    assert merged.num_ratings("validation").size == 0
    assert pickle.loads(pickle.dumps(merged)).counts() == merged.counts()


def test_each_splits_mean_vote_distribution_survives_merging_and_reaches_the_summary():
    """Worked by hand: train's two distributions average to [0.5, 0.25, 0.25, 0, ...]."""
    first = _columns(("train", 100, 2.0, [0.5, 0.5] + [0.0] * 8), ("test", 150, 3.0, [0.0, 0.0, 1.0] + [0.0] * 7))
    second = _columns(("train", 200, 2.0, [0.5, 0.0, 0.5] + [0.0] * 7))
    merged = stats.ExampleColumns().merge(first).merge(pickle.loads(pickle.dumps(second)))
    assert merged.mean_distribution("train") == pytest.approx([0.5, 0.25, 0.25] + [0.0] * 7)
    summary = stats.summarize(merged, [], num_index_rows=3)
    assert summary[stats.MEAN_DISTRIBUTION] == {"test": [0.0, 0.0, 1.0] + [0.0] * 7, "train": pytest.approx([0.5, 0.25, 0.25] + [0.0] * 7)}


def test_summary_counts_every_split_and_reason():
    examples = _columns(("train", 100, 5.0), ("train", 200, 6.0), ("test", 150, 4.0))
    summary = stats.summarize(examples, ["missing_file", "missing_file", "zero_votes"], num_index_rows=6)
    assert summary["examples"] == {"test": 1, "train": 2}
    assert summary["rejected"]["missing_file"] == 2 and summary["rejected"]["zero_votes"] == 1
    assert set(summary["rejected"]) == {reason.value for reason in Reason}
    assert summary["statistics"]["all"]["num_ratings"]["mean"] == pytest.approx(150)
    assert summary["statistics"]["train"]["mean_score"]["max"] == 6.0
    text = stats.format_summary(summary)
    assert "AVA.txt rows: 6" in text and "missing_file 2" in text and "duplicate_id" not in text


def test_unaccounted_is_empty_when_every_row_ends_once_and_the_shards_hold_the_examples():
    examples = {"train": 3, "test": 1}
    shard_files = [ShardFile("train", "a", 2, 10), ShardFile("train", "b", 1, 5), ShardFile("test", "c", 1, 5)]
    # 4 examples + 2 rejected rows = 6 rows; the not_in_index id is no row of AVA.txt.
    reasons = ["missing_file", "duplicate_id", "not_in_index"]
    assert stats.unaccounted(6, examples, reasons, shard_files) == []


def test_unaccounted_names_lost_rows_and_shards_that_disagree_with_the_examples():
    examples = {"train": 3}
    problems = stats.unaccounted(5, examples, ["zero_votes"], [ShardFile("train", "a", 2, 10)])
    assert len(problems) == 2
    assert "5 rows but 3 examples + 1 rejected rows = 4" in problems[0]
    assert "split train: 3 examples decoded, 2 in its shards" in problems[1]
