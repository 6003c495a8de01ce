"""The AVA rating scale and the statistics of a vote histogram.

The one place that knows scores run 1..10 and how a histogram of votes becomes a
distribution, a mean and a spread. The pipeline writes these numbers into the dataset,
the trainer reads the score grid from here to turn a predicted distribution into a
score, so both sides agree by construction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MIN_SCORE = 1
MAX_SCORE = 10
NUM_BINS = MAX_SCORE - MIN_SCORE + 1
SCORES = np.arange(MIN_SCORE, MAX_SCORE + 1, dtype=np.float64)
# AVA's binary "good photo" convention: mean score above this is a positive.
GOOD_PHOTO_THRESHOLD = 5.0


def normalise_counts(counts: Sequence[int]) -> np.ndarray:
    """Returns the votes as a float32 distribution that sums to 1 (to float32 rounding).

    Raises ValueError for a histogram of the wrong length, negative counts or no votes,
    because none of those has a distribution.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (NUM_BINS,):
        raise ValueError(f"expected {NUM_BINS} vote counts, got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError(f"vote counts must be non-negative, got {counts.tolist()}")
    total = counts.sum()
    if total == 0:
        raise ValueError("the histogram has no votes")
    return (counts / total).astype(np.float32)


def mean_and_std(counts: Sequence[int]) -> tuple[float, float]:
    """Mean score and population standard deviation of the votes.

    Population (not sample) deviation: it is what the AVA literature and the project
    report tabulate (id 340753: 5.360595, 1.225537).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        raise ValueError("the histogram has no votes")
    mean = float((counts * SCORES).sum() / total)
    variance = float((counts * (SCORES - mean) ** 2).sum() / total)
    return mean, variance**0.5
