"""The NIMA task for the loop in `loop.py`: the model, an optimizer per phase, the step of its head's loss,
each epoch's batches and the validation.

Two phases, as the paper trains: the head alone with the backbone frozen, then every layer
at a lower rate, each phase with its own Adam so its state survives a resume.
"""

from __future__ import annotations

from typing import Callable, Iterator

import keras
import ml_collections
import tensorflow as tf

from trainer import heads, input_pipeline, loop, models, predictions

HEAD, FINETUNE = "head", "finetune"
PHASE_NAMES = (HEAD, FINETUNE)
_EPOCH_SEED_STRIDE = 1000  # epochs of one phase must not share the crops of the next phase's


class NimaTask:
    def __init__(self, config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy):
        self.config, self.strategy = config, strategy
        self.global_batch_size = config.train.global_batch_size
        replicas = strategy.num_replicas_in_sync
        if self.global_batch_size % replicas:
            raise ValueError(
                f"--config.train.global_batch_size={self.global_batch_size} does not divide over "
                f"{replicas} replicas; use a multiple of {replicas}"
            )
        self.phases = tuple(loop.Phase(name, config[name].epochs) for name in PHASE_NAMES)
        self.steps_per_epoch = steps_per_epoch(config)
        with strategy.scope():
            self.model, self._backbone = models.build_model(config.model, config.input.image_size)
            self._optimizers = {name: _optimizer(config[name], config.train.mixed_precision) for name in PHASE_NAMES}
            for name in PHASE_NAMES:
                self._backbone.trainable = name == FINETUNE
                self._optimizers[name].build(self.model.trainable_variables)

    def checkpoint_items(self) -> dict[str, tf.Module]:
        return {"model": self.model, **self._optimizers}

    def model_variables(self) -> list[tf.Variable]:
        return self.model.variables

    def begin_phase(self, phase: loop.Phase) -> Callable[[Iterator], tf.Tensor]:
        self._backbone.trainable = phase.name == FINETUNE
        return make_train_step(
            self.model, self._optimizers[phase.name], self.strategy, self.global_batch_size, self.config.train.jit_compile
        )

    def train_iterator(self, phase_index: int, epoch: int, first_step: int) -> Iterator:
        dataset = self.strategy.distribute_datasets_from_function(
            lambda context: input_pipeline.train_dataset(
                self.config, context, epoch=phase_index * _EPOCH_SEED_STRIDE + epoch, skip_batches=first_step
            ).repeat()
        )
        return iter(dataset)

    def learning_rate(self, phase: loop.Phase) -> float:
        return float(self._optimizers[phase.name].learning_rate.numpy())

    def validate(self) -> dict[str, float]:
        return predictions.evaluate_model(self.model, self.config, self.config.dataset.eval_split)


def steps_per_epoch(config: ml_collections.ConfigDict) -> int:
    images = input_pipeline.images_per_epoch(config)
    steps = images // config.train.global_batch_size
    if config.train.max_steps_per_epoch:
        steps = min(steps, config.train.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"{images} training images make no full batch of {config.train.global_batch_size}: "
            "lower --config.train.global_batch_size"
        )
    return steps


def make_train_step(model, optimizer, strategy, global_batch: int, jit_compile: bool) -> Callable[[Iterator], tf.Tensor]:
    """One distributed step of the head's loss; the gradient part is XLA-compiled when `jit_compile`."""
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def loss_and_gradients(batch):
        with tf.GradientTape() as tape:
            predicted = model(tf.cast(batch[input_pipeline.PIXELS], tf.float32), training=True)
            loss = heads.training_loss(model, batch[input_pipeline.DISTRIBUTION], predicted, global_batch)
            scaled = optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, variables)

    def replica_step(batch):
        loss, gradients = loss_and_gradients(batch)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    @tf.function
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _optimizer(phase_config: ml_collections.ConfigDict, mixed_precision: bool) -> keras.optimizers.Optimizer:
    """Adam with inverse-time decay per step (the report's Keras `decay`): lr / (1 + decay * step)."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(
        phase_config.learning_rate, decay_steps=1, decay_rate=phase_config.decay
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer

