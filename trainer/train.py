"""The NIMA training loop: one loop on `strategy.run` for every tf.distribute strategy.

Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
the loop is written out: two phases (head with the backbone frozen, then every layer at a
lower rate), each with its own optimizer, checkpointed with `tf.train.CheckpointManager`
together with where the run stands (phase, epoch, step in epoch), so a killed job started
again with the same command carries on from its last checkpoint.

Outputs under --workdir: checkpoints/, best/ (lowest validation EMD), tensorboard/,
history.csv, config.json, metrics.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time

import keras
import ml_collections
import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from beam_pipelines import ratings
from trainer import evaluation, input_pipeline, metrics, models, strategies

PHASES = ("head", "finetune")
CHECKPOINT_DIR, BEST_DIR, TENSORBOARD_DIR = "checkpoints", "best", "tensorboard"
HISTORY_FILE, CONFIG_FILE, METRICS_FILE = "history.csv", "config.json", "metrics.json"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


@dataclasses.dataclass
class _Progress:
    """Where the run stands; checkpointed with the weights and optimizer state."""

    phase: tf.Variable
    epoch: tf.Variable
    step: tf.Variable
    global_step: tf.Variable
    best_val_emd: tf.Variable

    @classmethod
    def create(cls) -> "_Progress":
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
        return cls(
            counter("phase"),
            counter("epoch"),
            counter("step"),
            counter("global_step"),
            tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_val_emd"),
        )

    def as_dict(self) -> dict[str, tf.Variable]:
        # Not dataclasses.asdict: it deep-copies, and the checkpoint must track these very variables.
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, strategy: tf.distribute.Strategy) -> dict:
    """Trains (or resumes) both phases, then scores the best checkpoint on the test split."""
    chief = strategies.is_chief(strategy)
    tf.io.gfile.makedirs(workdir)
    keras.utils.set_random_seed(config.train.seed)
    if config.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    global_batch = config.train.global_batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--config.train.global_batch_size={global_batch} does not divide over "
            f"{strategy.num_replicas_in_sync} replicas; use a multiple of {strategy.num_replicas_in_sync}"
        )
    num_train = input_pipeline.num_examples(config, config.dataset.train_split)
    steps_per_epoch = _steps_per_epoch(config, num_train)
    logging.info(
        "batch: global %d, per replica %d, replicas %d, workers %d; %d training images, %d steps an epoch",
        global_batch,
        global_batch // strategy.num_replicas_in_sync,
        strategy.num_replicas_in_sync,
        getattr(strategy.extended, "_num_workers", 1),
        num_train,
        steps_per_epoch,
    )

    with strategy.scope():
        model, backbone = models.build_model(config.model, config.input.image_size)
        optimizers = {phase: _optimizer(config[phase], config.train.mixed_precision) for phase in PHASES}
        backbone.trainable = False
        optimizers["head"].build(model.trainable_variables)
        backbone.trainable = True
        optimizers["finetune"].build(model.trainable_variables)
    progress = _Progress.create()
    checkpoint = tf.train.Checkpoint(model=model, **optimizers, **progress.as_dict())
    manager = tf.train.CheckpointManager(
        checkpoint, _worker_dir(workdir, CHECKPOINT_DIR, chief), max_to_keep=config.train.keep_checkpoints
    )
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), _worker_dir(workdir, BEST_DIR, chief), max_to_keep=1
    )
    # Every worker restores the chief's checkpoint: workdir is shared (gs:// on a cluster).
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info(
            "resumed from %s: phase %s, epoch %d, step %d of the epoch (global step %d)",
            latest,
            PHASES[min(int(progress.phase.numpy()), len(PHASES) - 1)],
            int(progress.epoch.numpy()),
            int(progress.step.numpy()),
            int(progress.global_step.numpy()),
        )
    if chief:
        with tf.io.gfile.GFile(os.path.join(workdir, CONFIG_FILE), "w") as file:
            file.write(config.to_json_best_effort(indent=2, sort_keys=True))
    writer = tf.summary.create_file_writer(os.path.join(workdir, TENSORBOARD_DIR)) if chief else tf.summary.create_noop_writer()
    total_steps = steps_per_epoch * sum(config[phase].epochs for phase in PHASES)
    eta = _Eta(total_steps, int(progress.global_step.numpy()))

    while int(progress.phase.numpy()) < len(PHASES):
        phase_index = int(progress.phase.numpy())
        phase = PHASES[phase_index]
        backbone.trainable = phase == "finetune"
        optimizer = optimizers[phase]
        train_step = _make_train_step(model, optimizer, strategy, global_batch, config.train.jit_compile)
        while int(progress.epoch.numpy()) < config[phase].epochs:
            epoch = int(progress.epoch.numpy())
            first_step = int(progress.step.numpy())
            dataset = strategy.distribute_datasets_from_function(
                lambda context: input_pipeline.train_dataset(
                    config, context, epoch=phase_index * 1000 + epoch, skip_batches=first_step
                ).repeat()
            )
            iterator = iter(dataset)
            started, losses, pending = time.perf_counter(), [], []
            for step in range(first_step, steps_per_epoch):
                pending.append((int(progress.global_step.numpy()), train_step(iterator)))
                progress.step.assign(step + 1)
                progress.global_step.assign_add(1)
                global_step = int(progress.global_step.numpy())
                if global_step % config.train.log_every_steps == 0 or step + 1 == steps_per_epoch:
                    losses += _check_finite(pending, phase, epoch)
                    pending = []
                    with writer.as_default(step=global_step):
                        tf.summary.scalar("train/loss", losses[-1])
                        tf.summary.scalar("train/learning_rate", float(optimizer.learning_rate.numpy()))
                if global_step % config.train.checkpoint_every_steps == 0:
                    manager.save(checkpoint_number=global_step)
            seconds = time.perf_counter() - started
            steps_done = steps_per_epoch - first_step
            validation = evaluation.evaluate_model(model, config, config.dataset.eval_split)
            progress.epoch.assign(epoch + 1)
            progress.step.assign(0)
            improved = validation["emd"] < float(progress.best_val_emd.numpy())
            if improved:
                progress.best_val_emd.assign(validation["emd"])
                best_manager.save(checkpoint_number=int(progress.global_step.numpy()))
            manager.save(checkpoint_number=int(progress.global_step.numpy()))
            images_per_second = steps_done * global_batch / max(seconds, 1e-9)
            row = {
                "phase": phase,
                "epoch": epoch + 1,
                "global_step": int(progress.global_step.numpy()),
                "train_loss": float(np.mean(losses)) if losses else math.nan,
                "learning_rate": float(optimizer.learning_rate.numpy()),
                "images_per_second": images_per_second,
                "seconds": seconds,
                **{f"val_{name}": value for name, value in validation.items()},
            }
            if chief:
                _append_history(os.path.join(workdir, HISTORY_FILE), row)
                with writer.as_default(step=row["global_step"]):
                    tf.summary.scalar("train/images_per_second", images_per_second)
                    for name in ("emd", "accuracy", "lcc_mean", "srcc_mean", "lcc_std", "srcc_std"):
                        tf.summary.scalar(f"validation/{name}", validation[name])
            logging.info(
                "%s epoch %d/%d: %d steps in %.1fs (%.2f steps/s, %.1f images/s), loss %.4f | "
                "validation EMD %.4f, accuracy %.3f, LCC %.3f, SRCC %.3f%s | %s",
                phase,
                epoch + 1,
                config[phase].epochs,
                steps_done,
                seconds,
                steps_done / max(seconds, 1e-9),
                images_per_second,
                row["train_loss"],
                validation["emd"],
                validation["accuracy"],
                validation["lcc_mean"],
                validation["srcc_mean"],
                " (best)" if improved else "",
                eta.update(steps_done, seconds),
            )
        progress.phase.assign(phase_index + 1)
        progress.epoch.assign(0)
        manager.save(checkpoint_number=int(progress.global_step.numpy()))

    result = _final_metrics(model, tf.train.latest_checkpoint(os.path.join(workdir, BEST_DIR)), config)
    if chief:
        with tf.io.gfile.GFile(os.path.join(workdir, METRICS_FILE), "w") as file:
            json.dump(result, file, indent=2, sort_keys=True)
    _remove_worker_dirs(workdir, chief)
    return result


def _steps_per_epoch(config: ml_collections.ConfigDict, num_train: int) -> int:
    images = num_train
    if config.input.max_images_per_bin:
        images = min(images, config.input.max_images_per_bin * ratings.NUM_BINS)
    steps = images // config.train.global_batch_size
    if config.train.max_steps_per_epoch:
        steps = min(steps, config.train.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"{images} training images make no full batch of {config.train.global_batch_size}: "
            "lower --config.train.global_batch_size"
        )
    return steps


def _optimizer(phase_config: ml_collections.ConfigDict, mixed_precision: bool) -> keras.optimizers.Optimizer:
    """Adam with inverse-time decay per step (the report's Keras `decay`): lr / (1 + decay * step)."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(
        phase_config.learning_rate, decay_steps=1, decay_rate=phase_config.decay
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer


def _make_train_step(model, optimizer, strategy, global_batch: int, jit_compile: bool):
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def loss_and_gradients(batch):
        with tf.GradientTape() as tape:
            predicted = model(tf.cast(batch[input_pipeline.PIXELS], tf.float32), training=True)
            per_image = metrics.emd(batch[input_pipeline.DISTRIBUTION], predicted)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)
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


def _check_finite(pending: list[tuple[int, tf.Tensor]], phase: str, epoch: int) -> list[float]:
    values = []
    for step, loss in pending:
        value = float(loss.numpy())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the loss became {value} at global step {step + 1} ({phase} phase, epoch {epoch + 1}); "
                "nothing after the last checkpoint was saved. Lower the learning rate of this phase "
                f"(--config.{phase}.learning_rate) or turn off mixed precision, then run again."
            )
        values.append(value)
    return values


def _append_history(path: str, row: dict) -> None:
    """Appends an epoch, dropping rows a resumed run is redoing."""
    history = pd.DataFrame()
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as file:
            history = pd.read_csv(file)
        history = history[history["global_step"] < row["global_step"]]
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    with tf.io.gfile.GFile(path, "w") as file:
        history.to_csv(file, index=False)


def _final_metrics(model, best_checkpoint: str | None, config) -> dict:
    if best_checkpoint:
        tf.train.Checkpoint(model=model).restore(best_checkpoint).expect_partial()
    split = config.dataset.test_split
    _, result = evaluation.compare_with_baseline(model, config, split)
    logging.info(
        "%s split, best checkpoint: EMD %.4f, accuracy %.3f, SRCC %.3f | baseline (training mean distribution): "
        "EMD %.4f, accuracy %.3f, SRCC %.3f",
        split,
        result["model"]["emd"],
        result["model"]["accuracy"],
        result["model"]["srcc_mean"],
        result["baseline"]["emd"],
        result["baseline"]["accuracy"],
        result["baseline"]["srcc_mean"],
    )
    return {"split": split, "checkpoint": best_checkpoint, **result}


def _worker_dir(workdir: str, name: str, chief: bool) -> str:
    """Chief writes into workdir; other workers save to a scratch dir, as MultiWorker saving requires."""
    if chief:
        return os.path.join(workdir, name)
    return os.path.join(tempfile.gettempdir(), f"nima_worker_{os.getpid()}", name)


def _remove_worker_dirs(workdir: str, chief: bool) -> None:
    if not chief:
        shutil.rmtree(os.path.join(tempfile.gettempdir(), f"nima_worker_{os.getpid()}"), ignore_errors=True)


class _Eta:
    """Estimated time to finish from the measured step rate."""

    def __init__(self, total_steps: int, done: int):
        self._total, self._done, self._seconds, self._steps = total_steps, done, 0.0, 0

    def update(self, steps: int, seconds: float) -> str:
        self._done += steps
        self._seconds += seconds
        self._steps += steps
        remaining = (self._total - self._done) * self._seconds / max(self._steps, 1)
        return f"{self._done}/{self._total} steps, ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}"
