"""A training run's --workdir: the names of what it holds, and reading a run back (the
config it ran with, its best weights) for evaluation and export.

    config.json  history.csv  metrics.json  tensorboard/  checkpoints/  best/  eval/
"""

from __future__ import annotations

import json
import os

import keras
import ml_collections
import tensorflow as tf

from trainer import loop, models

CONFIG_FILE, HISTORY_FILE, METRICS_FILE = "config.json", "history.csv", "metrics.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR, BEST_DIR = loop.CHECKPOINT_DIR, loop.BEST_DIR


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    with tf.io.gfile.GFile(os.path.join(workdir, CONFIG_FILE), "w") as file:
        file.write(config.to_json_best_effort(indent=2, sort_keys=True))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} does not exist: is {workdir} the --workdir of a trainer.main run?")
    with tf.io.gfile.GFile(path) as file:
        return ml_collections.ConfigDict(json.load(file))


def restore_model(workdir: str, config: ml_collections.ConfigDict) -> tuple[keras.Model, str]:
    """The model with the run's best weights (by its head's validation metric), else its latest ones."""
    checkpoint = loop.best_checkpoint(workdir)
    if not checkpoint:
        raise FileNotFoundError(f"{workdir} holds no checkpoint yet: train first (python -m trainer.main ...)")
    model, _ = models.build_model(_without_download(config.model), config.input.image_size)
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial().assert_existing_objects_matched()
    return model, checkpoint


def _without_download(model_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The architecture alone: the checkpoint overwrites every weight, so none are fetched."""
    model_config = model_config.copy_and_resolve_references()
    model_config.weights = "none"
    return model_config
