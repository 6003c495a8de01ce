"""The training input pipeline's images/s against a decode-only ceiling, same records, same run.

    python -m benchmarks.input_benchmark [--seconds=20]

Subject: `trainer.input_pipeline.train_dataset` with the paper config (random 224 window of
the 256 images decoded with `decode_and_crop_jpeg`, flip, batch 64), and at the demo's 96 px.
Ceiling: the same TFDS read with one parallel map that only decodes each JPEG whole.
Goal: the pipeline at 224 keeps at least 90% of the ceiling.
"""

from __future__ import annotations

import argparse
import os

import tensorflow as tf

from ava_tfds.ava import features
from benchmarks import common
from configs import nima_mobilenet
from trainer import input_pipeline, model_input

BATCH = 64
GOAL = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    config = nima_mobilenet.get_config()
    config.dataset.name = "ava/sample"
    config.dataset.data_dir = common.sample_dataset()
    config.train.global_batch_size = BATCH
    context = tf.distribute.InputContext()
    cores = os.cpu_count()

    def images_per_second(dataset: tf.data.Dataset) -> float:
        iterator = iter(dataset.repeat())
        return common.rate(lambda: int(next(iterator)[input_pipeline.PIXELS].shape[0]), args.seconds, warmup=3)

    ceiling_dataset = (
        input_pipeline.eval_records(config, config.dataset.train_split)
        .map(lambda r: {input_pipeline.PIXELS: model_input.decode_stored(r[features.IMAGE])},
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    ceiling = images_per_second(ceiling_dataset)
    paper = images_per_second(input_pipeline.train_dataset(config, context, epoch=0))
    config.input.image_size = 96
    demo = images_per_second(input_pipeline.train_dataset(config, context, epoch=0))
    print(f"{'pipeline':<44}{'images/s':>10}{'per core':>10}{'vs ceiling':>12}")
    for name, value in [("ceiling: read + decode whole JPEG", ceiling), ("train input, 224 window of 256 (paper)", paper),
                        ("train input, 224 window resized to 96 (demo)", demo)]:
        print(f"{name:<44}{value:>10.0f}{value / cores:>10.0f}{value / ceiling:>12.2f}")
    print(f"goal: paper pipeline >= {GOAL:.0%} of the ceiling: {'met' if paper / ceiling >= GOAL else 'NOT met'} ({paper / ceiling:.2f})")


if __name__ == "__main__":
    main()
