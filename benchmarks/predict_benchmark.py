"""predict's images/s over a folder of JPEGs against the exported model on decoded tensors, same run.

    python -m benchmarks.predict_benchmark [--num_images=300] [--image_size=224] [--rounds=2]

An untrained NIMA (MobileNet alpha 0.25, weights none) is exported with
`trainer.export.export`; the folder holds the `ava/sample` photos (256x256 JPEGs).

Subject: `trainer.predict.score_files(export_dir, paths, batch_size=32, progress=False)`,
one whole call timed (it loads the SavedModel each call), and its marginal rate (a call on
the paths twice over minus a call on them once: the load and first-call costs cancel).
Ceiling: the exported network (`assets.extra/nima.keras`, the same weights and graph the
signature calls) with the signature's mean/std, as a `tf.function`, on the same photos
already decoded and resized to float pixels, in the same batches of 32.
Goal: score_files >= 80% of the ceiling.

Where the time goes (same photos, same run): reading the files alone (predict's 8
threads), the `serving_default` signature on bytes already in memory (in-graph decode via
map_fn + network), the signature's decode+resize alone, decode alone, a warm
`tf.saved_model.load`. Prototypes of fixes (not in trainer/): a tf.data pipeline that reads
and decodes with a parallel map, overlapping the network, feeding the network on pixels;
and the same with a plain (not antialiased) bilinear resize.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from ava_tfds.ava import features
from benchmarks import _common
from configs import demo
from trainer import export, input_pipeline, metrics, models, predict

BATCH = 32
GOAL = 0.80
AUTOTUNE = tf.data.AUTOTUNE


def _photos(folder: pathlib.Path, count: int, data_dir: str) -> list[str]:
    """`count` 256x256 JPEGs of the sample dataset (train, then test split), written to `folder`."""
    config = demo.get_config()
    config.dataset.data_dir = _common.sample_dataset(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("train", "test", "validation"):
        for record in input_pipeline.eval_records(config, split):
            if len(paths) == count:
                return paths
            path = folder / f"{int(record[features.IMAGE_ID])}.jpg"
            path.write_bytes(record[features.IMAGE].numpy())
            paths.append(str(path))
    while len(paths) < count:  # fewer photos than asked: repeat them under new names
        path = folder / f"copy{len(paths)}.jpg"
        path.write_bytes(pathlib.Path(paths[len(paths) % 300]).read_bytes())
        paths.append(str(path))
    return paths


def _batched(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=300)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds of each repeated measurement")
    parser.add_argument("--data_dir", default=_common.DEFAULT_DATA_DIR)
    args = parser.parse_args()
    size, cores = args.image_size, os.cpu_count() or 1

    config = demo.get_config().model
    config.alpha = args.alpha
    keras.utils.set_random_seed(0)
    model, _ = models.build_model(config, size)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="predict_benchmark_"))
    export_dir = str(scratch / "model")
    export.export(model, size, export_dir, info={})
    paths = _photos(scratch / "photos", args.num_images, args.data_dir)
    encoded = [pathlib.Path(p).read_bytes() for p in paths]
    print(_common.machine_line())
    print(f"{len(paths)} JPEGs of 256x256, mean {np.mean([len(b) for b in encoded]) / 1024:.1f} KiB; model at {size} px, alpha {args.alpha}")

    # The ceiling: the exported Keras model on pixels decoded beforehand, same batches.
    network = keras.models.load_model(os.path.join(export_dir, export.EXTRA_DIR, export.KERAS_FILE))

    @tf.function
    def network_scores(pixels):
        distribution = tf.cast(network(pixels, training=False), tf.float32)
        return (distribution, *metrics.score_mean_and_std(distribution))

    decode = tf.function(lambda data: tf.map_fn(
        lambda e: input_pipeline.decode_for_model(e, size), data, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32)))
    decode_only = tf.function(lambda data: tf.map_fn(
        lambda e: tf.io.decode_image(e, channels=3, expand_animations=False), data, fn_output_signature=tf.TensorSpec([256, 256, 3], tf.uint8)))
    byte_batches = [tf.constant(b) for b in _batched(encoded, BATCH)]
    pixel_batches = [decode(b) for b in byte_batches]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]

    def passes(run_batch, batches) -> float:
        """Images/s of `run_batch` over every batch, passes repeated for --seconds."""
        run_batch(batches[0])
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            for b in batches:
                run_batch(b)
            done += len(paths)
        return done / (time.perf_counter() - start)

    def score_files(file_list) -> float:
        start = time.perf_counter()
        scores, failures = predict.score_files(export_dir, file_list, batch_size=BATCH, progress=False)
        assert len(scores) == len(file_list) and not failures
        return time.perf_counter() - start

    def read_files() -> float:
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as readers:
            assert all(data is not None for _, data, _ in readers.map(predict._read, paths))
        return len(paths) / (time.perf_counter() - start)

    def load_seconds() -> float:
        start = time.perf_counter()
        loaded = tf.saved_model.load(export_dir).signatures["serving_default"]
        loaded(images=byte_batches[0])["mean"].numpy()
        return time.perf_counter() - start

    def tf_data_pipeline(antialias: bool):
        def make():
            def load(path):
                image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
                return tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=antialias)
            dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=AUTOTUNE).batch(BATCH).prefetch(2)
            return dataset
        def run() -> float:
            start, count = time.perf_counter(), 0
            for pixels in make():
                network_scores(pixels)[1].numpy()
                count += int(pixels.shape[0])
            assert count == len(paths)
            return count / (time.perf_counter() - start)
        return run

    doubled = paths + paths
    measures = {
        "ceiling: network on decoded, resized float batches": lambda: passes(lambda p: network_scores(p)[1].numpy(), pixel_batches),
        "score_files, one call over the folder": lambda: len(paths) / score_files(paths),
        "score_files, marginal (2x the paths - 1x)": lambda: len(paths) / max(score_files(doubled) - score_files(paths), 1e-9),
        "signature on bytes in memory, batches in turn": lambda: passes(lambda b: serve(images=b)["mean"].numpy(), byte_batches),
        "in-graph decode + antialiased resize (map_fn)": lambda: passes(lambda b: decode(b).numpy(), byte_batches),
        "in-graph decode only (map_fn)": lambda: passes(lambda b: decode_only(b).numpy(), byte_batches),
        "read the files (predict's 8 threads)": read_files,
        "prototype: tf.data read+decode (parallel map) -> network": tf_data_pipeline(True),
        "prototype: same, plain bilinear resize": tf_data_pipeline(False),
    }
    print("warming up...", flush=True)
    score_files(paths[:BATCH])
    for run in (measures["prototype: tf.data read+decode (parallel map) -> network"], measures["prototype: same, plain bilinear resize"]):
        run()
    load = _common.median([load_seconds() for _ in range(3)])
    _common.wait_for_quiet_machine()

    results: dict[str, list[float]] = {name: [] for name in measures}
    foreign = []
    for round_index in range(args.rounds):
        order = list(measures) if round_index % 2 == 0 else list(reversed(measures))
        for name in order:
            with _common.ForeignCpu() as other:
                value = measures[name]()
            results[name].append(value)
            foreign.append(other.share)
            print(f"  round {round_index + 1}: {name:<58}{value:8.1f} images/s  (other processes: {other.share:.0%} of the CPU)", flush=True)

    ceiling = _common.median(results["ceiling: network on decoded, resized float batches"])
    rows = []
    for name, values in results.items():
        value = _common.median(values)
        rows.append([name, f"{value:.1f}", f"{1000 / value:.2f}", f"{value / ceiling:.2f}", " / ".join(f"{v:.0f}" for v in values)])
    print()
    print(_common.table([f"scoring (MobileNet {args.alpha} at {size} px, batch 32)", "images/s", "ms/image", "vs ceiling", "rounds"], rows))
    subject = _common.median(results["score_files, one call over the folder"]) / ceiling
    marginal = _common.median(results["score_files, marginal (2x the paths - 1x)"]) / ceiling
    print(f"\nwarm tf.saved_model.load + first call on one batch: {load * 1000:.0f} ms (paid by every score_files call)")
    print(f"other processes took up to {max(foreign):.0%} of the CPU during a measurement; {cores} cores")
    print(f"goal: score_files >= {GOAL:.0%} of the ceiling: {'met' if subject >= GOAL else 'NOT met'} ({subject:.2f}; marginal {marginal:.2f})")


if __name__ == "__main__":
    main()
