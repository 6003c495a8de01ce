"""The Earth Mover's Distance and the AVA metrics, classification ones included: the one
place they are defined.

The EMD is a TensorFlow function because it is the training loss; the evaluation
metrics work on NumPy arrays gathered over a whole split, since correlations are not
averages over batches.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy import stats as scipy_stats

from ava_core import ratings

_PROBABILITY_EPSILON = 1e-7  # keras.config.epsilon(), the clip of Keras's binary cross-entropy


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
    """`evaluate_predictions` of a predicted distribution [N, NUM_BINS] (and its mean)."""
    predicted_distribution = np.asarray(predicted_distribution, dtype=np.float64)
    return evaluate_predictions(true_distribution, mean_score(predicted_distribution), predicted_distribution)


def evaluate_predictions(
    true_distribution, predicted_mean, predicted_distribution=None, probability_beautiful=None
) -> dict[str, float]:
    """Every figure the project reports for one split that the predictions allow.

    Always: accuracy at 5, LCC and SRCC of the mean, and the classification of "beautiful"
    photos (true mean score above 5): precision and recall of the prediction (predicted
    mean above 5), ROC AUC of the score (probability_beautiful where given, else the
    predicted mean), the confusion matrix, and the share of positives, which is the
    accuracy of calling every photo beautiful (AVA's classes are about 7:3).
    With a predicted distribution [N, NUM_BINS]: the EMD, and LCC and SRCC of the std.
    With probability_beautiful [N] (the binary head, whose mean is a ranking score and no
    estimate of the mean vote): its log loss, and no MAE or RMSE of the mean.
    """
    true_distribution = np.asarray(true_distribution, dtype=np.float64)
    predicted_mean = np.asarray(predicted_mean, dtype=np.float64)
    true_mean = mean_score(true_distribution)
    result = {
        "num_images": int(true_distribution.shape[0]),
        "accuracy": binary_accuracy(true_mean, predicted_mean),
        "lcc_mean": correlation(predicted_mean, true_mean, "lcc"),
        "srcc_mean": correlation(predicted_mean, true_mean, "srcc"),
    }
    if predicted_distribution is not None:
        predicted_distribution = np.asarray(predicted_distribution, dtype=np.float64)
        true_std, predicted_std = std_score(true_distribution), std_score(predicted_distribution)
        result["emd"] = float(np.mean(emd(true_distribution, predicted_distribution).numpy()))
        result["lcc_std"] = correlation(predicted_std, true_std, "lcc")
        result["srcc_std"] = correlation(predicted_std, true_std, "srcc")
    beautiful = true_mean > ratings.GOOD_PHOTO_THRESHOLD
    if probability_beautiful is None:
        error = predicted_mean - true_mean
        result["mae_mean"] = float(np.mean(np.abs(error)))
        result["rmse_mean"] = float(np.sqrt(np.mean(error**2)))
        score = predicted_mean
    else:
        score = np.asarray(probability_beautiful, dtype=np.float64)
        result["log_loss"] = log_loss(beautiful, score)
    return {**result, **classification(beautiful, predicted_mean > ratings.GOOD_PHOTO_THRESHOLD, score)}


def classification(true_positive, predicted_positive, score) -> dict[str, float]:
    """Precision, recall, ROC AUC of `score`, the confusion matrix and the share of positives.

    Precision (recall) is 0 when nothing is predicted (is) positive. ROC AUC is the chance
    that a random positive scores above a random negative, ties counting half (the
    Mann-Whitney statistic); NaN when the split holds only one class.
    """
    true_positive = np.asarray(true_positive, dtype=bool)
    predicted_positive = np.asarray(predicted_positive, dtype=bool)
    tp = int(np.sum(true_positive & predicted_positive))
    fp = int(np.sum(~true_positive & predicted_positive))
    fn = int(np.sum(true_positive & ~predicted_positive))
    tn = int(np.sum(~true_positive & ~predicted_positive))
    positives, negatives = tp + fn, tn + fp
    if positives and negatives:
        ranks = scipy_stats.rankdata(np.asarray(score, dtype=np.float64))
        roc_auc = (ranks[true_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    else:
        roc_auc = np.nan
    return {
        "positive_share": positives / max(positives + negatives, 1),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / positives if positives else 0.0,
        "roc_auc": float(roc_auc),
        "true_negatives": tn,
        "false_positives": fp,
        "false_negatives": fn,
        "true_positives": tp,
    }


def log_loss(true_positive, probability) -> float:
    """Mean binary cross-entropy, probabilities clipped as Keras's loss clips them, so that
    the validation figure is the binary head's training loss."""
    probability = np.clip(np.asarray(probability, dtype=np.float64), _PROBABILITY_EPSILON, 1 - _PROBABILITY_EPSILON)
    true_positive = np.asarray(true_positive, dtype=np.float64)
    return float(-np.mean(true_positive * np.log(probability) + (1 - true_positive) * np.log(1 - probability)))
