"""The training input pipeline's images/s against a decode-only ceiling doing the same decoding.

    python -m benchmarks.input_benchmark [--seconds=10] [--rounds=3] [--rows=20000]

Subject: `trainer.input_pipeline.train_dataset` with the paper config (random 224 window of
the 256 images decoded with `decode_and_crop_jpeg`, flip, batch 64), and at the demo's 96 px.
The data is an `ava/256` build of `--rows` rows (`common.ava_256_dataset`: AVA-sized
photos, built once and reused), so that an epoch is long as on AVA: on the 308 training
photos of `ava/sample` every 5th batch would be an epoch's end, where the pipeline drops the
last partial batch (a sixth of its decoding) and refills its shuffle buffer.
Ceiling: the same TFDS read with one parallel map that only decodes the same-sized window
(224 of 256, the same DCT method) of each JPEG: the work no pipeline can skip, so the ratio
is the pipeline's own overhead (shuffle, seeds, flip, batching). The three are run in
turn, `--rounds` times, and the medians (with the spread of the rounds) are compared.
Goal: the pipeline at 224 keeps at least 90% of the ceiling.
"""

from __future__ import annotations

import argparse
import os
import statistics

import tensorflow as tf

from ava_core import images
from ava_tfds.ava import features
from benchmarks import common
from configs import nima_mobilenet
from trainer import input_pipeline, model_input

BATCH = 64
GOAL = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="of each timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="of the AVA layout built for the benchmark")
    parser.add_argument("--distinct_photos", type=int, default=2_000, help="photos the layout's rows link to")
    parser.add_argument("--workdir", default="/tmp/nima_input_benchmark", help="where the dataset is built, once")
    args = parser.parse_args()
    config = nima_mobilenet.get_config()
    config.dataset.name = "ava/256"
    config.dataset.data_dir = common.ava_256_dataset(args.workdir, args.rows, args.distinct_photos)
    config.train.global_batch_size = BATCH
    context = tf.distribute.InputContext()
    cores = os.cpu_count()
    stored = images.STORED_SIZE[0]  # square: (256, 256)
    window = int(stored * config.input.crop_fraction)

    def decode_window(record):
        encoded = record[features.IMAGE]
        offsets = tf.random.uniform([2], maxval=stored - window + 1, dtype=tf.int32)
        crop = tf.stack([offsets[0], offsets[1], window, window])
        return {input_pipeline.PIXELS: tf.image.decode_and_crop_jpeg(
            encoded, crop, channels=3, dct_method=model_input.JPEG_DCT_METHOD)}

    ceiling_dataset = (
        input_pipeline.eval_records(config, config.dataset.train_split)
        .map(decode_window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    paper_dataset = input_pipeline.train_dataset(config, context, epoch=0)
    config.input.image_size = 96
    demo_dataset = input_pipeline.train_dataset(config, context, epoch=0)
    subjects = {
        f"ceiling: read + decode a {window} window": iter(ceiling_dataset.repeat()),
        f"train input, {window} window of 256 (paper)": iter(paper_dataset.repeat()),
        f"train input, {window} window resized to 96 (demo)": iter(demo_dataset.repeat()),
    }
    rates: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(args.rounds):
        for name, iterator in subjects.items():
            rates[name].append(common.rate(lambda: int(next(iterator)[input_pipeline.PIXELS].shape[0]), args.seconds, warmup=3))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ceiling, paper = list(medians.values())[:2]
    print(f"{'pipeline (median of rounds)':<46}{'images/s':>10}{'per core':>10}{'vs ceiling':>12}   rounds")
    for name, value in medians.items():
        spread = " ".join(f"{r:.0f}" for r in rates[name])
        print(f"{name:<46}{value:>10.0f}{value / cores:>10.0f}{value / ceiling:>12.2f}   {spread}")
    print(f"goal: paper pipeline >= {GOAL:.0%} of the ceiling: {'met' if paper / ceiling >= GOAL else 'NOT met'} ({paper / ceiling:.2f})")


if __name__ == "__main__":
    main()
