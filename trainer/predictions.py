"""A model's predicted vote distributions for a whole split, and the constant baseline's."""

from __future__ import annotations

import dataclasses

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from ava_tfds.ava import features
from trainer import input_pipeline, metrics


@dataclasses.dataclass(frozen=True)
class Predictions:
    image_ids: np.ndarray  # [N]
    true_distribution: np.ndarray  # [N, NUM_BINS]
    predicted_distribution: np.ndarray  # [N, NUM_BINS]


def predict_split(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> Predictions:
    """The model's distribution for every image of `split` (whole image, resized)."""
    predict = tf.function(lambda pixels: model(pixels, training=False))
    ids, true, predicted = [], [], []
    for batch in input_pipeline.eval_dataset(config, split, config.train.eval_batch_size):
        ids.append(batch[features.IMAGE_ID].numpy())
        true.append(batch[input_pipeline.DISTRIBUTION].numpy())
        predicted.append(predict(batch[input_pipeline.PIXELS]).numpy())
    if not ids:
        raise ValueError(f"split {split!r} of {config.dataset.name} has no images to evaluate")
    return Predictions(np.concatenate(ids), np.concatenate(true), np.concatenate(predicted).astype(np.float64))


def evaluate_model(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> dict[str, float]:
    scored = predict_split(model, config, split)
    return metrics.evaluate_distributions(scored.true_distribution, scored.predicted_distribution)


def compare_with_baseline(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> tuple[Predictions, dict]:
    """The model's metrics on `split` beside those of the baseline every model must beat:
    the training split's mean distribution predicted for every image."""
    scored = predict_split(model, config, split)
    baseline = np.broadcast_to(input_pipeline.training_distribution(config).numpy(), scored.true_distribution.shape)
    return scored, {
        "model": metrics.evaluate_distributions(scored.true_distribution, scored.predicted_distribution),
        "baseline": metrics.evaluate_distributions(scored.true_distribution, baseline),
    }
