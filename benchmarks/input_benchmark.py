"""The training input pipeline's images/s against a decode-only ceiling, same records, same run.

    python -m benchmarks.input_benchmark [--seconds=8] [--rounds=2] [--mode=steady|epochs]

Subject: `trainer.input_pipeline.train_dataset` with the paper config (a random 224 window
of the 256 images decoded with `decode_and_crop_jpeg`, flip, deterministic=False, batch 64),
and the same at the demo's 96 px (window, then resize).
Ceiling: the same TFDS read (`input_pipeline._read`, as `train_dataset` calls it) and one
map, with the same parallelism (AUTOTUNE, deterministic=False), that only decodes each
JPEG whole (`tf.io.decode_jpeg`), batched by 64.
Goal: the paper pipeline keeps at least 90% of the ceiling.

--mode=steady (default) makes the read endless (`_read(...).repeat()`), so every
figure is the rate inside one long epoch, as on AVA (4,000 batches an epoch at 64); the
308-image sample would otherwise restart (and drain) the pipeline every 4 batches.
--mode=epochs runs the pipelines as the training loop does on this sample,
`train_dataset(...).repeat()`, against `_read -> decode -> batch(drop_remainder)` repeated.

Also measured: prototypes of the fix for the demo's resize (not in trainer/): the window
decoded at 1/2 scale in the JPEG's DCT (`decode_and_crop_jpeg(ratio=2)`), then resized.
Rounds alternate the pipelines so that drift on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os

import tensorflow as tf

from ava_tfds.ava import features
from benchmarks import _common
from configs import nima_mobilenet
from trainer import input_pipeline

BATCH = 64
GOAL = 0.90
AUTOTUNE = tf.data.AUTOTUNE


def _random_crop_dct(record, image_size: int, crop_fraction: float, seed: int):
    """Prototype: `input_pipeline._random_crop` with the window decoded at 1/ratio scale.

    The same window and flip (same seeds); libjpeg's scaled IDCT does the first power-of-two
    of the downscale (224 -> 112 for the demo, nearly free: fewer coefficients inverted),
    then an antialiased resize does the rest (112 -> 96). At 224 from 256 the ratio is 1 and
    it is the original path.
    """
    encoded = record[features.IMAGE]
    image_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(record[features.IMAGE_ID], tf.int64)])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(image_seed, num=2))
    shape = tf.image.extract_jpeg_shape(encoded)
    height, width = shape[0], shape[1]
    crop_height = tf.maximum(1, tf.cast(tf.cast(height, tf.float32) * crop_fraction, tf.int32))
    crop_width = tf.maximum(1, tf.cast(tf.cast(width, tf.float32) * crop_fraction, tf.int32))
    offsets = tf.random.stateless_uniform([2], seed=crop_seed, maxval=2**30, dtype=tf.int32)
    offset_y = offsets[0] % (height - crop_height + 1)
    offset_x = offsets[1] % (width - crop_width + 1)
    # Largest power of two (at most 8, libjpeg's limit) by which the window is still >= image_size.
    shrink = tf.minimum(crop_height, crop_width) // image_size
    log2_ratio = tf.case(
        [(shrink >= 8, lambda: tf.constant(3)), (shrink >= 4, lambda: tf.constant(2)), (shrink >= 2, lambda: tf.constant(1))],
        default=lambda: tf.constant(0),
    )

    def decode(r):
        # In the scaled image the window's corner and size are divided by r (ceil, clipped).
        scaled_h, scaled_w = (height + r - 1) // r, (width + r - 1) // r
        y, x = offset_y // r, offset_x // r
        h, w = tf.minimum(crop_height // r, scaled_h - y), tf.minimum(crop_width // r, scaled_w - x)
        return tf.image.decode_and_crop_jpeg(encoded, tf.stack([y, x, h, w]), channels=3, ratio=r)

    image = tf.switch_case(log2_ratio, [lambda: decode(1), lambda: decode(2), lambda: decode(4), lambda: decode(8)])
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    size = tf.shape(image)
    pixels = tf.cond(
        tf.logical_and(size[0] == image_size, size[1] == image_size),
        lambda: image,
        lambda: tf.saturate_cast(tf.round(tf.image.resize(image, [image_size, image_size], antialias=True)), tf.uint8),
    )
    pixels = tf.ensure_shape(pixels, [image_size, image_size, 3])
    return {input_pipeline.PIXELS: pixels, input_pipeline.DISTRIBUTION: record[features.RATING_DISTRIBUTION]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per pipeline and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", choices=["steady", "epochs"], default="steady")
    parser.add_argument("--data_dir", default=_common.DEFAULT_DATA_DIR)
    args = parser.parse_args()

    config = nima_mobilenet.get_config()
    config.dataset.name = "ava/sample"
    config.dataset.data_dir = _common.sample_dataset(args.data_dir)
    config.train.global_batch_size = BATCH
    assert config.input.deterministic is False and config.input.crop_fraction == 0.875
    context = tf.distribute.InputContext()
    split = config.dataset.train_split
    cores = os.cpu_count() or 1
    seed = config.train.seed * 1_000_003  # train_dataset's shuffle seed for epoch 0

    original_read, original_crop = input_pipeline._read, input_pipeline._random_crop
    if args.mode == "steady":
        input_pipeline._read = lambda *a, **k: original_read(*a, **k).repeat()

    def ceiling() -> tf.data.Dataset:
        records = input_pipeline._read(config, split, context, shuffle_seed=seed)
        decode = lambda r: {input_pipeline.PIXELS: tf.io.decode_jpeg(r[features.IMAGE], channels=3)}
        return records.map(decode, num_parallel_calls=AUTOTUNE, deterministic=False).batch(BATCH, drop_remainder=True).prefetch(AUTOTUNE)

    def train(image_size: int, crop=None):
        def make() -> tf.data.Dataset:
            config.input.image_size = image_size
            input_pipeline._random_crop = crop or original_crop
            try:
                return input_pipeline.train_dataset(config, context, epoch=0)
            finally:
                input_pipeline._random_crop = original_crop

        return make

    pipelines = {
        "ceiling: same read, decode_jpeg whole": ceiling,
        "train_dataset, 224 window of 256 (paper)": train(224),
        "train_dataset, 224 window -> 96 (demo)": train(96),
        "prototype: demo, window decoded at 1/2 (DCT) -> 96": train(96, _random_crop_dct),
    }

    def images_per_second(dataset: tf.data.Dataset) -> tuple[float, float]:
        iterator = iter(dataset if args.mode == "steady" else dataset.repeat())
        return _common.rate(lambda: int(next(iterator)[input_pipeline.PIXELS].shape[0]), args.seconds, warmup=5)

    print(_common.machine_line())
    print(f"mode {args.mode}; batch {BATCH}; {args.rounds} rounds of {args.seconds:.0f} s per pipeline", flush=True)
    _common.wait_for_quiet_machine()
    results: dict[str, list[float]] = {name: [] for name in pipelines}
    foreign: list[float] = []
    for round_index in range(args.rounds):
        order = list(pipelines) if round_index % 2 == 0 else list(reversed(pipelines))
        for name in order:
            value, other = images_per_second(pipelines[name]())
            results[name].append(value)
            foreign.append(other)
            print(f"  round {round_index + 1}: {name:<52}{value:8.0f} images/s  (other processes: {other:.0%} of the CPU)", flush=True)

    ceiling_rate = _common.median(results["ceiling: same read, decode_jpeg whole"])
    rows = []
    for name, values in results.items():
        value = _common.median(values)
        rows.append([name, f"{value:.0f}", f"{value / cores:.0f}", f"{value / ceiling_rate:.2f}", " / ".join(f"{v:.0f}" for v in values)])
    print()
    print(_common.table(["pipeline (batch 64, ava/sample 256 px)", "images/s", "per core", "vs ceiling", "rounds"], rows))
    paper = _common.median(results["train_dataset, 224 window of 256 (paper)"]) / ceiling_rate
    demo = _common.median(results["train_dataset, 224 window -> 96 (demo)"]) / ceiling_rate
    print(f"\nother processes took up to {max(foreign):.0%} of the CPU during a measurement")
    print(f"goal: paper pipeline >= {GOAL:.0%} of the ceiling: {'met' if paper >= GOAL else 'NOT met'} ({paper:.2f}); demo: {demo:.2f}")
    input_pipeline._read = original_read


if __name__ == "__main__":
    main()
