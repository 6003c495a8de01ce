"""tf.data input for NIMA: the built `ava` TFRecords to batches of pixels and vote distributions.

Training: records are read with the image still encoded, shuffled, and one parallel map
decodes only a random window of each JPEG (`decode_and_crop_jpeg`: the rest of the image
is never decoded), flips it and resizes it to the model input if it differs (the paper
setting, a 224 window of the 256 image, needs no resize). Training pixels stay uint8 so
that batching and the copy to the accelerator move a quarter of the bytes; the step
casts them. Evaluation decodes the whole image and resizes it (`trainer.model_input`, the
one definition of a photo's pixels that serving shares). Pixels are 0..255 uint8: each
backbone's own preprocessing is inside the model, so the exported model takes the same input.

The random window and flip of an image depend only on (seed, epoch, image id), so a run
resumed mid-epoch or sharded differently sees the same crops.

Whole photos (`config.input.keep_aspect_ratio`, for spatial pyramid pooling models): no
crop, so the composition stays; each photo's longer side is resized to `max_side` and its
shorter side to the nearest multiple of `side_multiple` (`model_input.whole_image_size`), and photos
are batched by that shape (bucketing, `group_by_window`), not padded to a common canvas
with a mask. Bucketing because: no pixel of a batch is padding, so none of the network's
work is wasted and batch normalisation's training statistics see only photos (padding
would enter them, and a padded photo's border features, whatever mask the pooling
applied); the rounding bounds the shapes to a few (2 * max_side / side_multiple - 1), so
the train step is traced and XLA-compiled a few times, not once per photo; and it
stretches a photo by at most half a multiple on its shorter side, against the whole
aspect ratio a square squash changes. Evaluation keeps every photo (each shape's last
batch may be short). Training groups an endless stream of the epoch's photos, so every
batch is full (batch normalisation never sees a batch of one) and a shape's leftovers
wait for its next batch rather than being dropped; it flips photos at random (a flip keeps
every composition rule the thirds points express) and skips a resumed epoch's batches,
counted in that stream, before decoding them.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from ava_tfds.ava import features, stats
from ava_core import ratings
from trainer import model_input

AUTOTUNE = tf.data.AUTOTUNE
PIXELS, DISTRIBUTION = "pixels", "distribution"
_TARGET_SHAPE = "target_shape"  # (height, width) a whole photo is resized to
_SHAPE_KEY_STRIDE = 1 << 20  # photo sides stay below it, so height * stride + width names a shape


def train_dataset(
    config: ml_collections.ConfigDict,
    input_context: tf.distribute.InputContext,
    epoch: int,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """One epoch of per-replica batches for this input pipeline, `skip_batches` already seen.

    Skipping happens before decoding, so resuming late in an epoch costs only reading.
    """
    batch_size = input_context.get_per_replica_batch_size(config.train.global_batch_size)
    seed = config.train.seed * 1_000_003 + epoch
    records = _read(config, config.dataset.train_split, input_context, shuffle_seed=seed)
    records = records.shuffle(config.input.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    if config.input.max_images_per_bin:
        records = _undersample(records, -(-config.input.max_images_per_bin // input_context.num_input_pipelines))
    if keeps_aspect_ratio(config):
        return _whole_image_training_batches(config, records, input_context, batch_size, seed, skip_batches)
    records = records.skip(skip_batches * batch_size * input_context.num_replicas_in_sync // input_context.num_input_pipelines)
    crop = crop_function(config, seed)
    return _finish(records.map(crop, num_parallel_calls=AUTOTUNE, deterministic=config.input.deterministic), batch_size)


def eval_dataset(config: ml_collections.ConfigDict, split: str, batch_size: int) -> tf.data.Dataset:
    """Every image of `split` once, in file order, whole and resized; with its image id.
    Whole photos at their aspect ratio come in batches of one shape, in no fixed order."""
    records = eval_records(config, split)
    contract = input_contract(config)

    def whole_and_resized(record):
        pixels = contract.from_stored(record[features.IMAGE])
        return {PIXELS: pixels, DISTRIBUTION: record[features.RATING_DISTRIBUTION], features.IMAGE_ID: record[features.IMAGE_ID]}

    dataset = records.map(whole_and_resized, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
    if contract.whole_image:
        return _batch_by_shape(dataset, batch_size, lambda element: tf.shape(element[PIXELS])[:2]).prefetch(AUTOTUNE)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def input_contract(config: ml_collections.ConfigDict) -> model_input.InputContract:
    """How the config's model sees a photo: its input size or whole-photo sizing, and how
    the config's dataset stored the photo (read from its builder config, not its data)."""
    builder_config = tfds.builder(config.dataset.name, data_dir=config.dataset.data_dir or None).builder_config
    return model_input.InputContract(
        image_size=config.input.image_size,
        whole_image=(config.input.max_side, config.input.side_multiple) if keeps_aspect_ratio(config) else None,
        stored_size=tuple(builder_config.resize_to) if builder_config.resize_to else None,
        stored_resampling=builder_config.resampling,
        jpeg_quality=builder_config.jpeg_quality,
    )


def eval_records(config: ml_collections.ConfigDict, split: str) -> tf.data.Dataset:
    """The records of `split` in file order (their `_READ_FEATURES`), the image left encoded."""
    return _read(config, split, input_context=None, shuffle_seed=None)


def num_examples(config: ml_collections.ConfigDict, split: str) -> int:
    return _builder(config).info.splits[split].num_examples


def images_per_epoch(config: ml_collections.ConfigDict) -> int:
    """Training images an epoch visits: all, or with `max_images_per_bin` the sum over score
    bins of min(images in the bin, the cap). AVA's tail bins hold fewer than any useful cap,
    so counting every bin as full would make the epoch longer than its data."""
    if not config.input.max_images_per_bin:
        return num_examples(config, config.dataset.train_split)
    return int(np.minimum(score_bin_counts(config, config.dataset.train_split), config.input.max_images_per_bin).sum())


def score_bin_counts(config: ml_collections.ConfigDict, split: str) -> np.ndarray:
    """Images of `split` per mean-score bin (1..10), from one pass over its records."""
    bins = eval_records(config, split).map(_score_bin, num_parallel_calls=AUTOTUNE).batch(4096)
    counts = bins.reduce(
        tf.zeros([ratings.NUM_BINS], tf.int64),
        lambda total, batch: total + tf.math.bincount(batch, minlength=ratings.NUM_BINS, maxlength=ratings.NUM_BINS, dtype=tf.int64),
    )
    return counts.numpy()


def training_distribution(config: ml_collections.ConfigDict) -> np.ndarray:
    """float64 [10]: the mean vote distribution of the training split, the baseline every
    model must beat. The build wrote it into stats.json; a dataset built before it did is
    read once more for it (the whole training split: about 5 GB on all of AVA)."""
    builder = _builder(config)
    stats_path = os.path.join(os.fspath(builder.data_path), stats.STATS_FILE)
    if tf.io.gfile.exists(stats_path):
        with tf.io.gfile.GFile(stats_path) as file:
            written = json.load(file).get(stats.MEAN_DISTRIBUTION, {})
        if config.dataset.train_split in written:
            return np.asarray(written[config.dataset.train_split], np.float64)
    logging.info("%s holds no %s: reading the %s split for the baseline", stats_path, stats.MEAN_DISTRIBUTION, config.dataset.train_split)
    records = eval_records(config, config.dataset.train_split)
    distributions = records.map(lambda r: tf.cast(r[features.RATING_DISTRIBUTION], tf.float64))
    total = distributions.reduce(tf.zeros([ratings.NUM_BINS], tf.float64), lambda acc, d: acc + d)
    return (total / tf.reduce_sum(total)).numpy()


def keeps_aspect_ratio(config: ml_collections.ConfigDict) -> bool:
    """Whether the config feeds whole photos at their own aspect ratio; only a model with
    spatial pyramid pooling takes their many shapes."""
    if config.input.keep_aspect_ratio and config.model.pooling != "spp":
        raise ValueError(
            "--config.input.keep_aspect_ratio=True feeds photos of many shapes, which only a model with "
            "--config.model.pooling=spp takes: set that, or keep_aspect_ratio=False to train on square crops"
        )
    return bool(config.input.keep_aspect_ratio)


class DatasetNotBuiltError(FileNotFoundError):
    """The config's dataset is not where it points; the message gives the command that builds it."""


def _builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    builder = tfds.builder(config.dataset.name, data_dir=config.dataset.data_dir or None)
    if not builder.is_prepared():
        name, _, builder_config = config.dataset.name.partition("/")
        ava_dir = "" if builder.builder_config.num_sample_images else " --ava_dir=AVA_DIR"
        raise DatasetNotBuiltError(
            f"{config.dataset.name} is not built in {builder.data_dir}: build it with `python -m "
            f"beam_pipelines.build --config={builder_config or '256'}{ava_dir} --output_dir={config.dataset.data_dir or '~/tensorflow_datasets'}`"
            " or point --config.dataset.data_dir at where it was built"
        )
    return builder


# The features training and evaluation read: the others (vote counts, tags, challenge...)
# are dropped as soon as they are read, so that the shuffle buffer moves 4 tensors a record, not 9.
_READ_FEATURES = (features.IMAGE, features.IMAGE_ID, features.RATING_DISTRIBUTION, features.MEAN_SCORE)


def _read(config, split: str, input_context, shuffle_seed) -> tf.data.Dataset:
    """Reads `split`'s `_READ_FEATURES`, the image encoded; shards by file where there are files enough."""
    builder = _builder(config)
    num_files = len(builder.info.splits[split].file_instructions)
    by_file = input_context is not None and num_files >= input_context.num_input_pipelines
    dataset = builder.as_dataset(
        split=split,
        decoders={features.IMAGE: tfds.decode.SkipDecoding()},
        shuffle_files=shuffle_seed is not None,
        read_config=tfds.ReadConfig(
            input_context=input_context if by_file else None,
            shuffle_seed=shuffle_seed,
            interleave_cycle_length=min(16, num_files) if num_files else None,
        ),
    )
    if input_context is not None and not by_file:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset.map(lambda record: {name: record[name] for name in _READ_FEATURES}, num_parallel_calls=AUTOTUNE)


def _finish(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    # The build stored only images that decode; one that still fails is skipped with tf.data's
    # logged warning rather than ending the run.
    return dataset.ignore_errors(log_warning=True).batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def crop_function(config: ml_collections.ConfigDict, seed: int):
    """record -> {PIXELS, DISTRIBUTION}: the training crop of `train_dataset` (`_random_crop`)."""
    return lambda record: _random_crop(record, config.input.image_size, config.input.crop_fraction, seed)


def _random_crop(record, image_size: int, crop_fraction: float, seed: int):
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
    window = tf.stack([offset_y, offset_x, crop_height, crop_width])
    image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3, dct_method=model_input.JPEG_DCT_METHOD)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    pixels = tf.cond(
        tf.logical_and(crop_height == image_size, crop_width == image_size),
        lambda: image,
        lambda: model_input.resize_to_model(image, image_size),
    )
    pixels = tf.ensure_shape(pixels, [image_size, image_size, 3])
    return {PIXELS: pixels, DISTRIBUTION: record[features.RATING_DISTRIBUTION]}


def _whole_image_training_batches(config, records, input_context, batch_size: int, seed: int, skip_batches: int):
    """Endless full batches of whole photos of one shape each, from the epoch's photos over
    and over. The shape comes from the JPEG header, so batches are formed, and a resumed
    epoch's first ones skipped, before anything is decoded."""
    max_side, side_multiple = config.input.max_side, config.input.side_multiple

    def with_target_shape(record):
        shape = tf.image.extract_jpeg_shape(record[features.IMAGE])
        return {
            features.IMAGE: record[features.IMAGE],
            features.IMAGE_ID: record[features.IMAGE_ID],
            DISTRIBUTION: record[features.RATING_DISTRIBUTION],
            _TARGET_SHAPE: tf.stack(model_input.whole_image_size(shape[0], shape[1], max_side, side_multiple)),
        }

    def decode(batch):
        size = batch[_TARGET_SHAPE][0]

        def one(encoded_and_id):
            encoded, image_id = encoded_and_id
            image = model_input.decode_stored(encoded)
            image_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(image_id, tf.int64)])
            image = tf.image.stateless_random_flip_left_right(image, seed=image_seed)
            return model_input.resize_rounded(image, size)

        pixels = tf.map_fn(
            one, (batch[features.IMAGE], batch[features.IMAGE_ID]), fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
        )
        return {PIXELS: pixels, DISTRIBUTION: batch[DISTRIBUTION]}

    shaped = records.repeat().map(with_target_shape, num_parallel_calls=AUTOTUNE)
    batches = _batch_by_shape(shaped, batch_size, lambda r: r[_TARGET_SHAPE])
    batches = batches.skip(skip_batches * input_context.num_replicas_in_sync // input_context.num_input_pipelines)
    batches = batches.map(decode, num_parallel_calls=AUTOTUNE, deterministic=config.input.deterministic)
    return batches.ignore_errors(log_warning=True).prefetch(AUTOTUNE)


def _batch_by_shape(dataset: tf.data.Dataset, batch_size: int, shape_of) -> tf.data.Dataset:
    """Batches of up to `batch_size` elements whose `shape_of` (height, width) is the same;
    each shape's last batch holds what is left of it."""

    def key(element):
        shape = tf.cast(shape_of(element), tf.int64)
        return shape[0] * _SHAPE_KEY_STRIDE + shape[1]

    return dataset.group_by_window(key, lambda _, window: window.batch(batch_size), window_size=batch_size)


def _score_bin(record) -> tf.Tensor:
    """0..9: the bin of the record's mean score (1..10, floored)."""
    return tf.clip_by_value(
        tf.cast(tf.math.floor(record[features.MEAN_SCORE]), tf.int32) - ratings.MIN_SCORE, 0, ratings.NUM_BINS - 1
    )


def _undersample(records: tf.data.Dataset, max_per_bin: int) -> tf.data.Dataset:
    """Keeps at most `max_per_bin` images per mean-score bin (1..10) in this epoch."""

    def count(seen, record):
        score_bin = _score_bin(record)
        seen = tf.tensor_scatter_nd_add(seen, [[score_bin]], [1])
        return seen, (record, seen[score_bin] <= max_per_bin)

    return (
        records.scan(tf.zeros([ratings.NUM_BINS], tf.int32), count)
        .filter(lambda record, keep: keep)
        .map(lambda record, keep: record)
    )
