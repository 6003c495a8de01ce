"""A model's predictions for a whole split, and the constant baseline's."""

from __future__ import annotations

import dataclasses
import sys
import weakref

import keras
import ml_collections
from absl import logging
import numpy as np
import tensorflow as tf
import tqdm

from ava_tfds.ava import features
from trainer import heads, input_pipeline, metrics


@dataclasses.dataclass(frozen=True)
class Predictions:
    image_ids: np.ndarray  # [N]
    true_distribution: np.ndarray  # [N, NUM_BINS]
    outputs: dict[str, np.ndarray]  # the head's outputs by name (heads.MEAN, ...), float64
    unscored_ids: tuple[int, ...] = ()  # photos of the split that could not be decoded: in no figure

    @property
    def predicted_mean(self) -> np.ndarray:
        return self.outputs[heads.MEAN]

    @property
    def predicted_distribution(self) -> np.ndarray:
        """[N, NUM_BINS]; only a distribution head has one."""
        return self.outputs[heads.DISTRIBUTION]


def predict_split(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> Predictions:
    """The model's head outputs for every image of `split` (whole image, as the config feeds it)."""
    predict = _predict_function(model)
    ids, true, outputs = [], [], []
    bar = tqdm.tqdm(total=input_pipeline.num_examples(config, split), desc=f"scoring the {split} split", unit="photo",
                    leave=False, file=sys.stderr, disable=None)
    with bar:
        for batch in input_pipeline.eval_dataset(config, split, config.train.eval_batch_size):
            ids.append(batch[features.IMAGE_ID].numpy())
            true.append(batch[input_pipeline.DISTRIBUTION].numpy())
            outputs.append({name: value.numpy() for name, value in predict(batch[input_pipeline.PIXELS]).items()})
            bar.update(len(ids[-1]))
    if not ids:
        raise ValueError(f"split {split!r} of {config.dataset.name} has no images to evaluate")
    scored = np.concatenate(ids)
    unscored = _unscored_ids(config, split, scored)
    if unscored:
        logging.warning("%d photos of the %s split could not be decoded and are in no figure: ids %s",
                        len(unscored), split, ", ".join(map(str, unscored)))
    return Predictions(
        scored,
        np.concatenate(true),
        {name: np.concatenate([batch[name] for batch in outputs]).astype(np.float64) for name in outputs[0]},
        unscored,
    )


_PREDICT_FUNCTIONS: "weakref.WeakKeyDictionary[keras.Model, tf.types.experimental.GenericFunction]" = weakref.WeakKeyDictionary()


def _predict_function(model: keras.Model):
    """The model's head outputs for a uint8 batch of any size and, for whole photos, any
    shape: traced once per model, not at every validation of a training run."""
    if model not in _PREDICT_FUNCTIONS:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def predict(pixels):
            current = model_ref()
            return heads.of(current).outputs(current(tf.cast(pixels, tf.float32), training=False))

        _PREDICT_FUNCTIONS[model] = tf.function(predict, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    return _PREDICT_FUNCTIONS[model]


def _unscored_ids(config: ml_collections.ConfigDict, split: str, scored: np.ndarray) -> tuple[int, ...]:
    """The ids of the split's photos the evaluation could not decode (its input pipeline
    skips them rather than end the run). The split's size says whether any are missing;
    only then is the split read again for their ids."""
    if len(scored) >= input_pipeline.num_examples(config, split):
        return ()
    every = input_pipeline.eval_records(config, split).map(lambda record: record[features.IMAGE_ID])
    return tuple(sorted(set(int(i) for i in every.as_numpy_iterator()) - set(int(i) for i in scored)))


def evaluate_model(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> dict[str, float]:
    scored = predict_split(model, config, split)
    return evaluate_outputs(scored.true_distribution, scored.outputs)


def evaluate_outputs(true_distribution: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """The metrics that a head's outputs allow (`metrics.evaluate_predictions`)."""
    return metrics.evaluate_predictions(
        true_distribution,
        outputs[heads.MEAN],
        predicted_distribution=outputs.get(heads.DISTRIBUTION),
        probability_beautiful=outputs.get(heads.PROBABILITY_BEAUTIFUL),
    )


def compare_with_baseline(model: keras.Model, config: ml_collections.ConfigDict, split: str) -> tuple[Predictions, dict]:
    """The model's metrics on `split` beside those of the baseline every model must beat:
    the training split's mean distribution predicted for every image."""
    scored = predict_split(model, config, split)
    baseline = np.broadcast_to(input_pipeline.training_distribution(config), scored.true_distribution.shape)
    return scored, {
        "model": evaluate_outputs(scored.true_distribution, scored.outputs),
        "baseline": metrics.evaluate_distributions(scored.true_distribution, baseline),
    }
