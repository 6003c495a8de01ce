"""The model's head: what the network predicts from the votes, its loss, and what it reports.

The three formulations of the 002 write-up, chosen by `--config.model.head`:

- `distribution` (default, NIMA): softmax over the 10 score bins, trained with the EMD;
  reports the distribution, its mean and its standard deviation.
- `regression`: the mean score scaled to [-1, 1], tanh, mean squared error; the output is
  rescaled to the 1..10 score range. Reports the mean only.
- `binary`: "beautiful" when the mean score is above 5 (AVA's convention), sigmoid,
  binary cross-entropy with an L2 penalty on the head's weights (the write-up's l = 0.1).
  Reports `probability_beautiful`, and as its `mean` a ranking score (see `BinaryHead`).

Each head is a Keras layer, the model's last (`HEAD_NAME`), that also carries its training
target, per-image loss, outputs and the validation metric that picks its best checkpoint.
The training step, the evaluation and the export all ask the model's own head (`of`), so
a model cannot be trained as one head and scored as another. Heads compute in float32
even under mixed precision: a float16 softmax loses the small bins, a float16 sigmoid
the confident photos.
"""

from __future__ import annotations

import keras
import ml_collections
import tensorflow as tf

from ava_core import ratings
from trainer import metrics

HEAD_NAME = "nima_head"
# What the heads report (the exported signature's outputs); MEAN is always there.
MEAN, STD, DISTRIBUTION, PROBABILITY_BEAUTIFUL = "mean", "std", "distribution", "probability_beautiful"
# The regression target: the score range mapped onto tanh's [-1, 1].
SCORE_MIDPOINT = (ratings.MIN_SCORE + ratings.MAX_SCORE) / 2
SCORE_HALF_RANGE = (ratings.MAX_SCORE - ratings.MIN_SCORE) / 2


class Head(keras.layers.Layer):
    """A Dense layer of `units` with `activation`, plus what training and scoring need of it.

    Its weights start at zero, so its first output is its bias, which the first phase
    (backbone frozen) fits to the votes' average. Random weights would meet the backbone's
    features only once the second phase unfreezes them, and from random backbone weights
    those features are noise: the head's output would jump far from its target (the
    regression's loss rose sixfold on the sample) and the phase would be spent undoing it.
    """

    units: int
    activation: str
    best_metric: str  # a key of metrics.evaluate_predictions, lower is better

    def __init__(self, l2: float = 0.0, name: str = HEAD_NAME, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.l2 = l2
        self.dense = keras.layers.Dense(
            self.units,
            activation=self.activation,
            kernel_initializer="zeros",
            kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        return self.dense(features)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "l2": self.l2}

    def target(self, distribution: tf.Tensor) -> tf.Tensor:
        """What the head learns for each image, from its vote distribution [N, NUM_BINS]."""
        raise NotImplementedError

    def per_image_loss(self, target: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        """[N]: the loss of each image, before averaging and weight penalties."""
        raise NotImplementedError

    def outputs(self, output: tf.Tensor) -> dict[str, tf.Tensor]:
        """The layer's output as the reported quantities, MEAN always (float32, [N] or [N, NUM_BINS])."""
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="ava_nima")
class DistributionHead(Head):
    units, activation, best_metric = ratings.NUM_BINS, "softmax", "emd"

    def target(self, distribution):
        return tf.cast(distribution, tf.float32)

    def per_image_loss(self, target, output):
        return metrics.emd(target, output)

    def outputs(self, output):
        output = tf.cast(output, tf.float32)
        mean, std = metrics.score_mean_and_std(output)
        return {DISTRIBUTION: output, MEAN: mean, STD: std}


@keras.saving.register_keras_serializable(package="ava_nima")
class RegressionHead(Head):
    # RMSE of the mean score orders checkpoints as the loss, an MSE on a linear rescaling, does.
    units, activation, best_metric = 1, "tanh", "rmse_mean"

    def target(self, distribution):
        mean, _ = metrics.score_mean_and_std(tf.cast(distribution, tf.float32))
        return (mean - SCORE_MIDPOINT) / SCORE_HALF_RANGE

    def per_image_loss(self, target, output):
        return tf.square(target - output[:, 0])

    def outputs(self, output):
        return {MEAN: SCORE_MIDPOINT + SCORE_HALF_RANGE * tf.cast(output[:, 0], tf.float32)}


@keras.saving.register_keras_serializable(package="ava_nima")
class BinaryHead(Head):
    """Predicts P(mean score > 5). It predicts no mean vote; its MEAN is a ranking score on
    the vote scale, piecewise linear in the probability (0 -> 1, 0.5 -> 5, 1 -> 10), so that
    it orders photos as the probability does and is above 5 exactly when the probability
    is above 0.5: accuracy at 5 and the rank correlations mean the same as for the other
    heads, while MAE and RMSE are not reported for it."""

    units, activation, best_metric = 1, "sigmoid", "log_loss"

    def target(self, distribution):
        mean, _ = metrics.score_mean_and_std(tf.cast(distribution, tf.float32))
        return tf.cast(mean > ratings.GOOD_PHOTO_THRESHOLD, tf.float32)

    def per_image_loss(self, target, output):
        return keras.losses.binary_crossentropy(target[:, None], output)

    def outputs(self, output):
        probability = tf.cast(output[:, 0], tf.float32)
        threshold = ratings.GOOD_PHOTO_THRESHOLD
        above = threshold + (probability - 0.5) * 2 * (ratings.MAX_SCORE - threshold)
        below = threshold + (probability - 0.5) * 2 * (threshold - ratings.MIN_SCORE)
        return {PROBABILITY_BEAUTIFUL: probability, MEAN: tf.where(probability >= 0.5, above, below)}


HEADS: dict[str, type[Head]] = {"distribution": DistributionHead, "regression": RegressionHead, "binary": BinaryHead}


def build(model_config: ml_collections.ConfigDict) -> Head:
    """The head `--config.model.head` names; the binary one with `model.binary_l2`."""
    if model_config.head not in HEADS:
        raise ValueError(f"--config.model.head={model_config.head!r} is unknown; choose one of {', '.join(HEADS)}")
    head = HEADS[model_config.head]
    return head(l2=model_config.binary_l2) if head is BinaryHead else head()


def of(model: keras.Model) -> Head:
    """The head a model built by `models.build_model` was trained with."""
    return model.get_layer(HEAD_NAME)


def training_loss(model: keras.Model, distribution: tf.Tensor, output: tf.Tensor, global_batch_size: int) -> tf.Tensor:
    """One replica's share of the step's loss: its images' head loss summed over the global
    batch size, plus the weight penalties (the binary head's L2) divided among the replicas,
    so that summing over replicas gives the global batch's loss."""
    head = of(model)
    loss = tf.nn.compute_average_loss(
        head.per_image_loss(head.target(distribution), output), global_batch_size=global_batch_size
    )
    if model.losses:
        loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
    return loss
