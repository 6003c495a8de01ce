"""Trains NIMA and scores its best checkpoint: the NIMA task in the generic loop, with the
actions a run writes (TensorBoard, history.csv) and its final test metrics (metrics.json).

Outputs under --workdir are named in `run_dir`.
"""

from __future__ import annotations

import json
import os

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from trainer import actions, heads, loop, predictions, run_dir, task


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, strategy: tf.distribute.Strategy) -> dict:
    """Trains (or resumes) both phases, then scores the best checkpoint on the test split."""
    tf.io.gfile.makedirs(workdir)
    keras.utils.set_random_seed(config.train.seed)
    if config.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    nima = task.NimaTask(config, strategy)
    chief = loop.is_chief(strategy)
    print(
        f"batch: global {nima.global_batch_size}, per replica {nima.global_batch_size // strategy.num_replicas_in_sync}, "
        f"replicas {strategy.num_replicas_in_sync}; {nima.steps_per_epoch} steps an epoch",
        flush=True,
    )
    run_actions: list[loop.Action] = [actions.EpochProgressBar(), actions.EpochLog()]
    if chief:
        run_dir.save_config(workdir, config)
        run_actions += [
            actions.TensorBoard(os.path.join(workdir, run_dir.TENSORBOARD_DIR)),
            actions.History(os.path.join(workdir, run_dir.HISTORY_FILE)),
        ]
    best = loop.run(nima, workdir, strategy, loop_settings(config), run_actions)
    result = _test_metrics(nima.model, best, config)
    if chief:
        with tf.io.gfile.GFile(os.path.join(workdir, run_dir.METRICS_FILE), "w") as file:
            json.dump(result, file, indent=2, sort_keys=True)
    return result


def loop_settings(config: ml_collections.ConfigDict) -> loop.LoopSettings:
    """How the loop runs the config's training: what `trainer.main` and the benchmarks use."""
    return loop.LoopSettings(
        log_every_steps=config.train.log_every_steps,
        checkpoint_every_steps=config.train.checkpoint_every_steps,
        keep_checkpoints=config.train.keep_checkpoints,
        best_metric=heads.HEADS[config.model.head].best_metric,
        steps_per_loop=config.train.steps_per_loop,
    )


def _test_metrics(model: keras.Model, checkpoint: str | None, config: ml_collections.ConfigDict) -> dict:
    if checkpoint:
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    split = config.dataset.test_split
    _, result = predictions.compare_with_baseline(model, config, split)
    logging.info(
        "%s split, best checkpoint: %s | baseline (training mean distribution): %s",
        split,
        actions.headline(result["model"]),
        actions.headline(result["baseline"]),
    )
    return {"split": split, "checkpoint": checkpoint, **result}
