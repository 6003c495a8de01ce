"""Exports a trained run for serving: `python -m serving.export --workdir=DIR --export_dir=OUT`.

OUT is a SavedModel whose `serving_default` signature takes a batch of encoded images
(string tensor: JPEG, PNG, GIF or BMP bytes, any size) and returns `distribution` [N, 10],
`mean` [N] and `std` [N]. Decoding and resizing are in the graph, the same ops as the
evaluation, so TF Serving, a Vertex AI endpoint or `tf.saved_model.load` need nothing but
TensorFlow. `OUT/assets.extra/` (ignored by TF Serving) holds the Keras model for further
fine-tuning and `export_info.json` (source checkpoint, input size, config).
"""

from __future__ import annotations

import json
import os
import tempfile

import keras
import tensorflow as tf
from absl import app, flags, logging

from ava_core import ratings
from serving import signature
from trainer import input_pipeline, metrics, run_dir

EXTRA_DIR = "assets.extra"
KERAS_FILE = "nima.keras"
INFO_FILE = "export_info.json"

FLAGS = flags.FLAGS


def export(model: keras.Model, image_size: int, export_dir: str, info: dict) -> None:
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.map_fn(
            lambda encoded: input_pipeline.decode_for_model(encoded, image_size),
            images,
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
        )
        distribution = tf.cast(model(pixels, training=False), tf.float32)
        mean, std = metrics.score_mean_and_std(distribution)
        return {signature.DISTRIBUTION: distribution, signature.MEAN: mean, signature.STD: std}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=signature.SIGNATURE, fn=serve, input_signature=[tf.TensorSpec([None], tf.string, name=signature.IMAGES)]
    )
    archive.write_out(export_dir)
    extra = os.path.join(export_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(extra)
    _save_keras(model, os.path.join(extra, KERAS_FILE))
    with tf.io.gfile.GFile(os.path.join(extra, INFO_FILE), "w") as file:
        json.dump({"image_size": image_size, "num_bins": ratings.NUM_BINS, **info}, file, indent=2, sort_keys=True)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = run_dir.load_config(FLAGS.workdir)
    model, checkpoint = run_dir.restore_model(FLAGS.workdir, config)
    export(model, config.input.image_size, FLAGS.export_dir, {"checkpoint": checkpoint, "config": config.to_dict()})
    logging.info("exported %s to %s", checkpoint, FLAGS.export_dir)
    print(
        f"SavedModel written to {FLAGS.export_dir} (signature {signature.SIGNATURE}: {signature.IMAGES} -> "
        f"{signature.DISTRIBUTION}, {signature.MEAN}, {signature.STD})"
    )


def _save_keras(model: keras.Model, path: str) -> None:
    """Keras writes .keras files to local paths only: write one locally, then copy it (gs:// too)."""
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, KERAS_FILE)
        model.save(local)
        tf.io.gfile.copy(local, path, overwrite=True)


def _define_flags() -> None:
    """Flags exist only when this module is the program, so importing it clashes with nothing."""
    flags.DEFINE_string("workdir", None, "The trainer.main --workdir to export the best checkpoint of.", required=True)
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (local or gs://).", required=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
