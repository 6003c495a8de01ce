"""The rating statistics against the project report's table and hand-computed cases."""

import numpy as np
import pytest

from ava_core import ratings

# The project report's sample rows: id -> (votes for 1..10, mean, sd) as it tabulates them.
REPORT_ROWS = {
    340753: ([3, 2, 5, 43, 100, 80, 23, 10, 3, 0], 5.360595, 1.225537),
    674342: ([0, 2, 4, 9, 39, 56, 31, 21, 15, 6], 6.355191, 1.595610),
    737669: ([8, 16, 29, 55, 81, 18, 6, 0, 0, 0], 4.234742, 1.300529),
    16606: ([0, 1, 13, 24, 46, 55, 40, 14, 5, 2], 5.770000, 1.478885),
    344449: ([1, 6, 17, 52, 91, 47, 25, 6, 1, 0], 5.044715, 1.285485),
}


@pytest.mark.parametrize("image_id", sorted(REPORT_ROWS))
def test_mean_and_std_match_the_report(image_id):
    counts, mean, sd = REPORT_ROWS[image_id]
    got_mean, got_sd = ratings.mean_and_std(counts)
    assert round(got_mean, 6) == mean
    assert round(got_sd, 6) == sd


def test_hand_computed_case():
    # Two votes, one for 1 and one for 3: mean 2, population sd 1.
    assert ratings.mean_and_std([1, 0, 1, 0, 0, 0, 0, 0, 0, 0]) == (2.0, 1.0)


@pytest.mark.parametrize("counts", [c for c, _, _ in REPORT_ROWS.values()] + [[1, 1, 1, 0, 0, 0, 0, 0, 0, 7]])
def test_distribution_sums_to_one_in_float32(counts):
    distribution = ratings.normalise_counts(counts)
    assert distribution.dtype == np.float32
    assert abs(float(distribution.sum(dtype=np.float64)) - 1.0) < 1e-6
    np.testing.assert_allclose(distribution, np.asarray(counts) / sum(counts), rtol=1e-7)


@pytest.mark.parametrize("counts", [[0] * 10, [1] * 9, [-1, 2, 0, 0, 0, 0, 0, 0, 0, 0]])
def test_invalid_histograms_are_refused(counts):
    with pytest.raises(ValueError):
        ratings.normalise_counts(counts)
