"""The tf.data input on the built sample: shapes, ranges, determinism, sharding, resume, undersampling;
whole photos batched by shape."""

import io
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFilter

from ava_tfds.ava import features, stats
from trainer import input_pipeline, model_input, task

PIXELS, DISTRIBUTION = input_pipeline.PIXELS, input_pipeline.DISTRIBUTION


def _context(num_pipelines=1, pipeline_id=0, replicas=1):
    return tf.distribute.InputContext(num_pipelines, pipeline_id, replicas)


def _batches(dataset, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


def test_training_batches_have_the_model_shape_and_pixel_range(demo_config):
    demo_config.train.global_batch_size = 8
    batch = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=0), 1)[0]
    size = demo_config.input.image_size
    assert batch[PIXELS].shape == (8, size, size, 3) and batch[PIXELS].dtype == np.uint8
    assert batch[PIXELS].std() > 5 and batch[PIXELS].max() > 200
    assert batch[DISTRIBUTION].shape == (8, 10)
    np.testing.assert_allclose(batch[DISTRIBUTION].sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_batches_other_epoch_other_crops(demo_config):
    demo_config.train.global_batch_size = 8
    demo_config.input.deterministic = True
    first = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=0), 3)
    again = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=0), 3)
    other = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=1), 3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[PIXELS], b[PIXELS])
    assert not np.array_equal(first[0][PIXELS], other[0][PIXELS])


def test_skipping_batches_resumes_the_same_epoch(demo_config):
    demo_config.train.global_batch_size = 4
    demo_config.input.deterministic = True
    full = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=2), 5)
    resumed = _batches(input_pipeline.train_dataset(demo_config, _context(), epoch=2, skip_batches=3), 2)
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a[PIXELS], b[PIXELS])
        np.testing.assert_array_equal(a[DISTRIBUTION], b[DISTRIBUTION])


def test_input_pipelines_share_out_the_images(demo_config):
    ids = []
    for pipeline_id in (0, 1):
        records = input_pipeline._read(demo_config, "train", _context(2, pipeline_id, 2), shuffle_seed=0)
        ids.append({int(r[features.IMAGE_ID]) for r in records.as_numpy_iterator()})
    everything = {int(r[features.IMAGE_ID]) for r in input_pipeline.eval_records(demo_config, "train").as_numpy_iterator()}
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert ids[0] | ids[1] == everything


def test_evaluation_sees_each_whole_image_once(demo_config):
    dataset = input_pipeline.eval_dataset(demo_config, "test", batch_size=16)
    batches = _batches(dataset, 100)
    ids = np.concatenate([b[features.IMAGE_ID] for b in batches])
    assert len(ids) == len(set(ids)) == input_pipeline.num_examples(demo_config, "test")
    record = next(input_pipeline.eval_records(demo_config, "test").as_numpy_iterator())
    np.testing.assert_array_equal(batches[0][PIXELS][0], _resized(record[features.IMAGE], [demo_config.input.image_size] * 2))


def _resized(stored: bytes, size) -> np.ndarray:
    """What the evaluation feeds, worked out here: Pillow's decode of the stored JPEG (the
    exact IDCT), TensorFlow's antialiased bilinear resize, rounded to uint8."""
    pixels = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"), dtype=np.float32)
    return np.clip(np.round(tf.image.resize(pixels, size, antialias=True).numpy()), 0, 255).astype(np.uint8)


def _score_bins(records) -> np.ndarray:
    return np.bincount([int(np.clip(np.floor(r[features.MEAN_SCORE]), 1, 10)) - 1 for r in records.as_numpy_iterator()], minlength=10)


def test_undersampling_caps_each_score_bin(demo_config):
    records = input_pipeline._undersample(input_pipeline.eval_records(demo_config, "train"), 5)
    bins = [int(np.clip(np.floor(r[features.MEAN_SCORE]), 1, 10)) for r in records.as_numpy_iterator()]
    counts = np.bincount(bins, minlength=11)
    everything = [int(np.clip(np.floor(r[features.MEAN_SCORE]), 1, 10)) for r in input_pipeline.eval_records(demo_config, "train").as_numpy_iterator()]
    np.testing.assert_array_equal(counts, np.minimum(np.bincount(everything, minlength=11), 5))


def test_training_distribution_is_the_mean_of_the_split_read_from_the_builds_stats(demo_config, monkeypatch, tmp_path):
    distributions = [r[features.RATING_DISTRIBUTION] for r in input_pipeline.eval_records(demo_config, "train").as_numpy_iterator()]
    expected = np.mean(distributions, axis=0)
    records = input_pipeline.eval_records

    def no_reading(*args):
        raise AssertionError("the baseline must come from stats.json, not from another pass over the split")

    monkeypatch.setattr(input_pipeline, "eval_records", no_reading)
    np.testing.assert_allclose(input_pipeline.training_distribution(demo_config), expected, rtol=1e-5)
    # A dataset built before stats.json held it: read from the split, once.
    monkeypatch.setattr(input_pipeline, "eval_records", records)
    older = tmp_path / "tfds"
    shutil.copytree(demo_config.dataset.data_dir, older)
    for path in older.glob(f"ava/sample/*/{stats.STATS_FILE}"):
        summary = json.loads(path.read_text())
        del summary[stats.MEAN_DISTRIBUTION]
        path.write_text(json.dumps(summary))
    demo_config.dataset.data_dir = str(older)
    np.testing.assert_allclose(input_pipeline.training_distribution(demo_config), expected, rtol=1e-5)


def test_an_undersampled_epoch_is_as_long_as_the_images_it_keeps(demo_config):
    cap = 12
    demo_config.input.max_images_per_bin = cap
    demo_config.train.global_batch_size = 4
    demo_config.train.max_steps_per_epoch = 0
    kept = int(np.minimum(_score_bins(input_pipeline.eval_records(demo_config, "train")), cap).sum())
    assert kept < cap * 10, "the sample's tail score bins must hold fewer images than the cap for this test to mean anything"
    assert input_pipeline.images_per_epoch(demo_config) == kept
    epoch = input_pipeline.train_dataset(demo_config, _context(), epoch=0)
    assert task.steps_per_epoch(demo_config) == sum(1 for _ in epoch) == kept // 4


def _stored_sizes(config, split) -> dict:
    """(height, width) of each stored photo of `split`, by image id, read with PIL."""
    return {
        int(r[features.IMAGE_ID]): Image.open(io.BytesIO(r[features.IMAGE])).size[::-1]
        for r in input_pipeline.eval_records(config, split).as_numpy_iterator()
    }


def _bucket(size, max_side, multiple):
    """The shape a whole photo is resized to, worked out here: longer side max_side, shorter
    side rounded to the multiple nearest to the aspect ratio."""
    height, width = size
    short = max(1, round(min(size) * max_side / max(size) / multiple)) * multiple
    return (max_side, short) if height >= width else (short, max_side)


def test_whole_photos_are_batched_by_shape_and_every_one_is_evaluated(spp_demo_config):
    config = spp_demo_config
    sizes = _stored_sizes(config, "test")
    records = {int(r[features.IMAGE_ID]): r[features.IMAGE] for r in input_pipeline.eval_records(config, "test").as_numpy_iterator()}
    batches = _batches(input_pipeline.eval_dataset(config, "test", batch_size=8), 1000)
    ids = np.concatenate([b[features.IMAGE_ID] for b in batches])
    assert sorted(ids) == sorted(sizes)  # every photo, once
    for batch in batches:
        for image_id, pixels in zip(batch[features.IMAGE_ID], batch[PIXELS]):
            assert pixels.shape[:2] == _bucket(sizes[int(image_id)], config.input.max_side, config.input.side_multiple)
        np.testing.assert_array_equal(batch[PIXELS][-1], _resized(records[int(batch[features.IMAGE_ID][-1])], batch[PIXELS].shape[1:3]))
    shapes = {b[PIXELS].shape[1:3] for b in batches}
    assert {h > w for h, w in shapes} == {True, False}, "the framed sample holds wide and tall photos"
    assert any(len(b[PIXELS]) < 8 for b in batches), "each shape's last batch is short, not dropped"


def test_whole_photo_training_batches_are_full_of_one_shape_and_resume_exactly(spp_demo_config):
    config = spp_demo_config
    config.train.global_batch_size = 8
    config.input.deterministic = True
    sizes = _stored_sizes(config, "train")
    by_distribution = {tuple(r[features.RATING_DISTRIBUTION]): sizes[int(r[features.IMAGE_ID])]
                       for r in input_pipeline.eval_records(config, "train").as_numpy_iterator()}
    # Two passes' worth: a shape's leftovers from the first pass are batched with its photos
    # of the second, so by then every photo has been in a batch.
    count = 2 * len(sizes) // 8
    batches = _batches(input_pipeline.train_dataset(config, _context(), epoch=0), count)
    seen = set()
    for batch in batches:
        assert batch[PIXELS].shape[0] == 8 and batch[PIXELS].dtype == np.uint8
        for distribution in batch[DISTRIBUTION]:
            size = by_distribution[tuple(distribution)]
            assert batch[PIXELS].shape[1:3] == _bucket(size, config.input.max_side, config.input.side_multiple)
            seen.add(tuple(distribution))
    assert seen == set(by_distribution)
    resumed = _batches(input_pipeline.train_dataset(config, _context(), epoch=0, skip_batches=count - 2), 2)
    for a, b in zip(batches[-2:], resumed):
        np.testing.assert_array_equal(a[PIXELS], b[PIXELS])


def test_whole_photos_need_a_pyramid_model(spp_demo_config):
    spp_demo_config.model.pooling = "avg"
    with pytest.raises(ValueError, match="pooling=spp"):
        input_pipeline.eval_dataset(spp_demo_config, "test", batch_size=8)


@pytest.mark.parametrize("quality, subsampling", [(75, 0), (90, 2)])
def test_training_and_evaluation_decode_a_stored_jpeg_to_pillows_pixels(quality, subsampling):
    """Scoring decodes with Pillow; TensorFlow's default fast IDCT is about a grey level off."""
    rng = np.random.default_rng(quality)
    photo = Image.fromarray(rng.integers(0, 255, (97, 131, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    data = buffer.getvalue()
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(model_input.decode_stored(tf.constant(data)).numpy(), pillow)
    window = tf.image.decode_and_crop_jpeg(data, [8, 16, 64, 80], channels=3, dct_method=model_input.JPEG_DCT_METHOD)
    # Chroma upsampled at the window's edge sees no pixels beyond it: exact inside.
    np.testing.assert_array_equal(window.numpy()[2:-2, 2:-2], pillow[10:70, 18:94])
    assert np.abs(tf.io.decode_jpeg(data, channels=3).numpy().astype(int) - pillow).mean() > 0.5


def test_training_crops_are_windows_of_the_stored_image_some_mirrored(demo_config):
    """Each training image is a window of crop_fraction of its stored image, mirrored or not,
    at offsets and flips that vary from image to image (found here by search)."""
    demo_config.input.image_size = window = int(256 * demo_config.input.crop_fraction)
    crop = input_pipeline.crop_function(demo_config, seed=7)
    offsets, flips = set(), set()
    for record in input_pipeline.eval_records(demo_config, "train").take(12).as_numpy_iterator():
        pixels = crop(record)[input_pipeline.PIXELS].numpy().astype(np.int16)
        stored = model_input.decode_stored(record[features.IMAGE]).numpy().astype(np.int16)
        candidates = [
            (np.abs(view[y:y + window, x:x + window] - pixels).mean(), (y, x), flipped)
            for flipped, view in ((False, stored), (True, stored[:, ::-1]))
            for y in range(257 - window) for x in range(257 - window)
        ]
        error, offset, flipped = min(candidates, key=lambda candidate: candidate[0])
        assert error < 0.5, (record[features.IMAGE_ID], error)  # decoding a window, not the whole: edge rounding only
        offsets.add(offset)
        flips.add(flipped)
    assert flips == {False, True} and len(offsets) >= 10
