"""predict's photos/s over a folder of JPEGs against the exported model on decoded tensors, same run.

    python -m benchmarks.predict_benchmark [--num_images=300] [--image_size=224]

Subject: `serving.predict.score_files` (read files in threads, decode and resize in the
SavedModel's graph, batches of 32). Ceiling: the same SavedModel's Keras model called on
already decoded and resized float batches of 32. Goal: at least 80% of the ceiling.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import tempfile
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from PIL import Image

from serving import export, predict
from trainer import models

BATCH = 32
GOAL = 0.80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_images", type=int, default=300)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=0.25)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    config = ml_collections.ConfigDict(
        {"backbone": "mobilenet", "alpha": args.alpha, "weights": "none", "dropout": 0.5, "batchnorm_momentum": 0.0}
    )
    model, _ = models.build_model(config, args.image_size)
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch)
        export.export(model, args.image_size, str(root / "model"), info={})
        rng = np.random.default_rng(0)
        paths = []
        for index in range(args.num_images):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
            path = root / "photos" / f"{index}.jpg"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(buffer.getvalue())
            paths.append(str(path))

        predict.score_files(str(root / "model"), paths[:BATCH], BATCH, progress=False)  # warm-up: load and trace
        start = time.perf_counter()
        scores, failures = predict.score_files(str(root / "model"), paths, BATCH, progress=False)
        predict_rate = len(scores) / (time.perf_counter() - start)
        assert not failures

        pixels = tf.constant(rng.uniform(0, 255, (BATCH, args.image_size, args.image_size, 3)).astype("float32"))
        call = tf.function(lambda x: model(x, training=False))
        call(pixels)
        start, done = time.perf_counter(), 0
        while done < args.num_images:
            call(pixels).numpy()
            done += BATCH
        raw_rate = done / (time.perf_counter() - start)
    print(f"{'scoring':<48}{'images/s':>10}{'vs raw':>8}")
    print(f"{'model on decoded, resized batches (ceiling)':<48}{raw_rate:>10.1f}{1.0:>8.2f}")
    print(f"{'serving.predict over a folder of 256px JPEGs':<48}{predict_rate:>10.1f}{predict_rate / raw_rate:>8.2f}")
    print(f"goal: predict >= {GOAL:.0%} of the raw rate: {'met' if predict_rate / raw_rate >= GOAL else 'NOT met'} ({predict_rate / raw_rate:.2f})")


if __name__ == "__main__":
    main()
