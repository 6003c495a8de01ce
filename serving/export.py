"""Exports a trained run for serving: `python -m serving.export --workdir=DIR --export_dir=OUT [--tflite=KIND]`.

OUT is a SavedModel with two signatures (names in `serving.signature`), both returning
what the model's head reports (`trainer.heads`): `mean` [N] always, the score;
`distribution` [N, 10] and `std` [N] from the distribution head; `probability_beautiful`
[N] from the binary head:

A photo's score is what the evaluation computes for it (`trainer.model_input`): the
pixels the dataset's build would have stored for it, resized as the evaluation resizes.

- `serving_default` takes a batch of encoded files (string tensor: JPEG, PNG, GIF, BMP or
  WebP bytes, any size) and replays the build and the evaluation's resize in the graph
  (`serving.graph_decode`), so TF Serving, a Vertex AI endpoint or `tf.saved_model.load`
  need nothing but TensorFlow.
- `score_pixels` takes the network's input itself, uint8 [N, S, S, 3], for clients that
  prepare photos themselves: every format Pillow reads, ICC profiles applied.
  `serving.predict` feeds it `InputContract.from_photo`, the evaluation's own pixels.

A model with pyramid pooling trained on whole photos (`configs/nima_spp.py`) takes them
the same way here: the bytes signature resizes each photo as the evaluation does, its
longer side to `max_side` (`model_input.whole_image_size`), and scores it alone; its
pixel signature takes [N, H, W, 3] of any one shape.

`OUT/assets.extra/` (`signature.EXTRA_DIR`, ignored by TF Serving) holds the Keras model for further fine-tuning,
`export_info.json` (source checkpoint, the input contract, config, TFLite files) and, with
`--tflite=KIND` (repeatable), TFLite models for phones, converted from `score_pixels`:
the same pixels in, the same outputs, allocated for one photo a call. A whole-photo
model's TFLite input is [1, H, W, 3] of each photo's own shape (its signature runner, or
`resize_tensor_input`, sizes it per call). KIND is `float32`,
`float16` (weights in half precision) or `dynamic_int8` (weights in int8, activations in
float). Their mean scores stay within `TFLITE_MEAN_TOLERANCE` of the SavedModel's: a
quantised model strays by its weights' rounding, and how far depends on the trained
weights, so the command checks each TFLite model it writes against the SavedModel on up
to `--tflite_check_photos` photos of the run's validation split (the evaluation's
pixels, one photo a call), records the figures in export_info.json, and refuses (no
file, exit 1) a kind whose largest difference exceeds its tolerance.
"""

from __future__ import annotations

import json
import os
import tempfile

from ava_core import terminal

if __name__ == "__main__":
    terminal.quiet_tensorflow()  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy import stats  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from ava_core import ratings  # noqa: E402
from serving import graph_decode, signature  # noqa: E402
from trainer import heads, input_pipeline, model_input, run_dir  # noqa: E402

KERAS_FILE = "nima.keras"
TFLITE_KINDS = ("float32", "float16", "dynamic_int8")
# The largest difference of mean score (1..10) from the SavedModel's that each TFLite model
# is allowed: float32 differs only in the order of float operations; the quantised ones by
# their weights' rounding (on the tests' network: 1e-5, 3e-4 and 5e-4).
TFLITE_MEAN_TOLERANCE = {"float32": 1e-4, "float16": 0.01, "dynamic_int8": 0.05}

FLAGS = flags.FLAGS


class TfliteOutOfTolerance(ValueError):
    """A TFLite model strays further from the SavedModel than its kind's documented tolerance."""


def export(
    model: keras.Model,
    contract: model_input.InputContract,
    export_dir: str,
    info: dict,
    tflite: tuple[str, ...] = (),
    check_photos: list[np.ndarray] | None = None,
) -> None:
    """`check_photos`: uint8 [H, W, 3] pixels each TFLite model is checked on (`check_tflite`);
    a kind out of its tolerance is removed and raises `TfliteOutOfTolerance` once the
    SavedModel and export_info.json are written.

    A whole-photo model (`contract.whole_image`) scores each photo of the bytes
    signature alone (photos of a batch differ in shape), and its pixel signature takes a
    batch of any one shape."""
    image_size = contract.image_size

    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.map_fn(
            lambda encoded: graph_decode.from_photo(encoded, contract),
            images,
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
        )
        return outputs(model, tf.cast(pixels, tf.float32))

    pixels_shape = [None, image_size, image_size, 3]
    if contract.whole_image:
        max_side = contract.whole_image[0]
        one_photo = {
            name: tf.TensorSpec(value.shape[1:], value.dtype)
            for name, value in outputs(model, tf.zeros([1, max_side, max_side, 3])).items()
        }

        def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
            def score_one(encoded):
                pixels = tf.cast(graph_decode.from_photo(encoded, contract), tf.float32)
                return {name: value[0] for name, value in outputs(model, pixels[None]).items()}

            return tf.map_fn(score_one, images, fn_output_signature=one_photo)

        pixels_shape = [None, None, None, 3]

    def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(model, tf.cast(pixels, tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=signature.SIGNATURE, fn=serve_images, input_signature=[tf.TensorSpec([None], tf.string, name=signature.IMAGES)]
    )
    archive.add_endpoint(
        name=signature.PIXELS_SIGNATURE,
        fn=serve_pixels,
        input_signature=[tf.TensorSpec(pixels_shape, tf.uint8, name=signature.PIXELS)],
    )
    archive.write_out(export_dir, verbose=False)
    extra = os.path.join(export_dir, signature.EXTRA_DIR)
    tf.io.gfile.makedirs(extra)
    _save_keras(model, os.path.join(extra, KERAS_FILE))
    tflite_info, refused = {}, []
    reference = _mean_scores(model, check_photos) if check_photos else None  # once, for every kind
    for kind in tflite:
        path = write_tflite(export_dir, kind)
        tflite_info[kind] = {"file": os.path.basename(path), "mean_tolerance": TFLITE_MEAN_TOLERANCE[kind]}
        if check_photos:
            measured = check_tflite(path, check_photos, reference)
            tflite_info[kind]["measured"] = measured
            if measured["max_abs_diff_of_mean"] > TFLITE_MEAN_TOLERANCE[kind]:
                tf.io.gfile.remove(path)
                tflite_info[kind]["file"] = None
                refused.append(
                    f"{kind}: its mean score differs from the SavedModel's by up to {measured['max_abs_diff_of_mean']:.4f} "
                    f"on {measured['photos']} validation photos, past its tolerance {TFLITE_MEAN_TOLERANCE[kind]}"
                )
    with tf.io.gfile.GFile(os.path.join(extra, signature.INFO_FILE), "w") as file:
        json.dump(
            {
                signature.INPUT_CONTRACT: contract.to_json(),
                "num_bins": ratings.NUM_BINS,
                "tflite": tflite_info,
                **info,
            },
            file,
            indent=2,
            sort_keys=True,
        )
    if refused:
        raise TfliteOutOfTolerance(
            "TFLite model not written, " + "; ".join(refused) + ". The SavedModel is written; for phones, export a "
            "float16 model (--tflite=float16), which keeps the weights to half precision."
        )


def outputs(model: keras.Model, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
    """What every exported form returns for float32 pixels [N, H, W, 3] in 0..255: the
    outputs of the model's head (`trainer.heads`, which the evaluation scores too)."""
    return heads.of(model).outputs(model(pixels, training=False))


def tflite_path(export_dir: str, kind: str) -> str:
    return os.path.join(export_dir, signature.EXTRA_DIR, f"nima_{kind}.tflite")


def check_tflite(path: str, photos: list[np.ndarray], reference: np.ndarray) -> dict:
    """How far the TFLite model at `path` strays on `photos` (uint8 [H, W, 3]) from the
    model's mean scores `reference`, one photo a call as on a phone: the largest and mean
    |difference| of the mean score, and the Spearman correlation of the two rankings."""
    with tf.io.gfile.GFile(path, "rb") as file:
        runner = tf.lite.Interpreter(model_content=file.read()).get_signature_runner(signature.PIXELS_SIGNATURE)
    lite = np.array([runner(**{signature.PIXELS: photo[None]})[signature.MEAN][0] for photo in photos])
    differences = np.abs(lite - reference)
    return {
        "photos": len(photos),
        "max_abs_diff_of_mean": float(differences.max()),
        "mean_abs_diff_of_mean": float(differences.mean()),
        "spearman": float(stats.spearmanr(lite, reference)[0]) if len(photos) > 1 and np.ptp(reference) > 0 else None,
    }


def _mean_scores(model: keras.Model, photos: list[np.ndarray]) -> np.ndarray:
    """The model's mean score of each photo, one a call (photos may differ in shape)."""
    return np.array([outputs(model, tf.cast(photo[None], tf.float32))[signature.MEAN].numpy()[0] for photo in photos])


def validation_photos(config, limit: int) -> list[np.ndarray]:
    """Up to `limit` photos of the run's validation split as the evaluation feeds them."""
    photos = []
    for batch in input_pipeline.eval_dataset(config, config.dataset.eval_split, batch_size=32):
        photos.extend(batch[input_pipeline.PIXELS].numpy()[: limit - len(photos)])
        if len(photos) >= limit:
            break
    return photos


def write_tflite(export_dir: str, kind: str) -> str:
    """Converts the SavedModel's pixel signature to a TFLite file; returns its path.

    The input keeps a free batch dimension but is allocated for one image, what mobile
    delegates expect; `resize_tensor_input` gives a batch.
    """
    if kind not in TFLITE_KINDS:
        raise ValueError(f"--tflite={kind!r} is unknown; choose among {', '.join(TFLITE_KINDS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir, signature_keys=[signature.PIXELS_SIGNATURE])
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights, float activations
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    path = tflite_path(export_dir, kind)
    with tf.io.gfile.GFile(path, "wb") as file:
        file.write(converter.convert())
    return path


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = run_dir.load_config(FLAGS.workdir)
    model, checkpoint = run_dir.restore_model(FLAGS.workdir, config)
    tflite = tuple(dict.fromkeys(FLAGS.tflite))
    info = {"checkpoint": checkpoint, "config": config.to_dict()}
    check_photos = None
    if tflite and FLAGS.tflite_check_photos:
        try:
            check_photos = validation_photos(config, FLAGS.tflite_check_photos)
        except input_pipeline.DatasetNotBuiltError as error:
            raise SystemExit(
                f"error: each TFLite model is checked on the run's validation photos, and {error}. Export where the "
                "run's dataset is, or pass --tflite_check_photos=0 to write the TFLite models unchecked."
            ) from None
    try:
        export(model, input_pipeline.input_contract(config), FLAGS.export_dir, info, tflite, check_photos)
    except TfliteOutOfTolerance as error:
        raise SystemExit(f"error: {error}") from None
    logging.info("exported %s to %s", checkpoint, FLAGS.export_dir)
    outputs_named = ", ".join(outputs(model, tf.zeros([1, config.input.image_size, config.input.image_size, 3])))
    print(
        f"SavedModel written to {FLAGS.export_dir} (signatures {signature.SIGNATURE}: {signature.IMAGES} -> {outputs_named}; "
        f"{signature.PIXELS_SIGNATURE}: {signature.PIXELS} -> {outputs_named})"
    )
    for kind in tflite:
        checked = f", within {TFLITE_MEAN_TOLERANCE[kind]} of the SavedModel on {len(check_photos)} validation photos" if check_photos else ""
        print(f"TFLite model ({kind}) written to {tflite_path(FLAGS.export_dir, kind)}{checked}")


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
    flags.DEFINE_multi_enum(
        "tflite", [], TFLITE_KINDS, "Also write a TFLite model of this kind to EXPORT_DIR/assets.extra/ (repeatable)."
    )
    flags.DEFINE_integer(
        "tflite_check_photos", 256, "Validation photos each TFLite model is checked on against the SavedModel (0: none)."
    )


if __name__ == "__main__":
    _define_flags()
    terminal.run(main)
