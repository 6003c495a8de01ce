"""The Earth Mover's Distance and the AVA metrics: the one place they are defined.

The EMD is a TensorFlow function because it is the training loss; the evaluation
metrics work on NumPy arrays gathered over a whole split, since correlations are not
averages over batches.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy import stats as scipy_stats

from ava_core import ratings


def emd(y_true: tf.Tensor, y_pred: tf.Tensor, r: float = 2.0) -> tf.Tensor:
    """Per-image EMD between distributions over the ordered score bins [..., NUM_BINS].

    `(mean_k |CDF_true[k] - CDF_pred[k]|^r)^(1/r)` (Talebi & Milanfar 2018, r=2). Computed
    in float32 whatever the inputs, so mixed precision does not round the loss.
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    cdf_gap = tf.abs(tf.cumsum(y_true, axis=-1) - tf.cumsum(y_pred, axis=-1))
    return tf.pow(tf.reduce_mean(tf.pow(cdf_gap, r), axis=-1), 1.0 / r)


def score_mean_and_std(distribution: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean score and its standard deviation under each distribution [..., NUM_BINS].

    A TensorFlow function so that the exported serving graph computes the very same
    numbers as the evaluation.
    """
    scores = tf.constant(ratings.SCORES, dtype=distribution.dtype)
    mean = tf.reduce_sum(distribution * scores, axis=-1)
    variance = tf.reduce_sum(distribution * tf.square(scores - mean[..., None]), axis=-1)
    return mean, tf.sqrt(tf.maximum(variance, 0.0))


def mean_score(distribution) -> np.ndarray:
    """Expected score of each distribution [N, NUM_BINS] -> [N]."""
    return score_mean_and_std(tf.constant(distribution, tf.float64))[0].numpy()


def std_score(distribution) -> np.ndarray:
    """Standard deviation of the score under each distribution [N, NUM_BINS] -> [N]."""
    return score_mean_and_std(tf.constant(distribution, tf.float64))[1].numpy()


def binary_accuracy(true_mean, predicted_mean, threshold: float = ratings.GOOD_PHOTO_THRESHOLD) -> float:
    """Share of images on the same side of the threshold (AVA's "good photo" > 5)."""
    return float(np.mean((np.asarray(true_mean) > threshold) == (np.asarray(predicted_mean) > threshold)))


def correlation(x, y, kind: str) -> float:
    """Pearson ("lcc") or Spearman ("srcc"); 0 when either side is constant (no ranking)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    if kind == "lcc":
        return float(scipy_stats.pearsonr(x, y).statistic)
    if kind == "srcc":
        return float(scipy_stats.spearmanr(x, y).statistic)
    raise ValueError(f"unknown correlation {kind!r}: use 'lcc' or 'srcc'")


def evaluate_distributions(true_distribution, predicted_distribution) -> dict[str, float]:
    """Every figure the project reports for one split, from the two [N, NUM_BINS] arrays."""
    true_distribution = np.asarray(true_distribution, dtype=np.float64)
    predicted_distribution = np.asarray(predicted_distribution, dtype=np.float64)
    true_mean, predicted_mean = mean_score(true_distribution), mean_score(predicted_distribution)
    true_std, predicted_std = std_score(true_distribution), std_score(predicted_distribution)
    error = predicted_mean - true_mean
    return {
        "num_images": int(true_distribution.shape[0]),
        "emd": float(np.mean(emd(true_distribution, predicted_distribution).numpy())),
        "accuracy": binary_accuracy(true_mean, predicted_mean),
        "lcc_mean": correlation(predicted_mean, true_mean, "lcc"),
        "srcc_mean": correlation(predicted_mean, true_mean, "srcc"),
        "lcc_std": correlation(predicted_std, true_std, "lcc"),
        "srcc_std": correlation(predicted_std, true_std, "srcc"),
        "mae_mean": float(np.mean(np.abs(error))),
        "rmse_mean": float(np.sqrt(np.mean(error**2))),
    }
