"""The descriptive statistics of stats.json against pandas, and the summary's accounting."""

import numpy as np
import pandas as pd
import pytest

from beam_pipelines import stats
from beam_pipelines.rejections import Reason


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


def test_summary_counts_every_split_and_reason():
    examples = [stats.ExampleSummary("train", 100, 5.0), stats.ExampleSummary("train", 200, 6.0),
                stats.ExampleSummary("test", 150, 4.0)]
    summary = stats.summarize(examples, ["missing_file", "missing_file", "zero_votes"], num_index_rows=6)
    assert summary["examples"] == {"test": 1, "train": 2}
    assert summary["rejected"]["missing_file"] == 2 and summary["rejected"]["zero_votes"] == 1
    assert set(summary["rejected"]) == {reason.value for reason in Reason}
    assert summary["statistics"]["all"]["num_ratings"]["mean"] == pytest.approx(150)
    assert summary["statistics"]["train"]["mean_score"]["max"] == 6.0
    text = stats.format_summary(summary)
    assert "AVA.txt rows: 6" in text and "missing_file 2" in text and "duplicate_id" not in text
