"""The export follows the model's head and input: each signature returns what the head
reports, and a pyramid pooling model scores whole photos of any shape as the evaluation does."""

import dataclasses
import io
import pathlib
import shutil

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from serving import export, predict, signature
from trainer import heads, model_input, models

MAX_SIDE, SIDE_MULTIPLE = 96, 16
# A pyramid model trained on `full` (photos stored at their own size), and a square one on the 256 squash.
WHOLE = model_input.InputContract(image_size=64, whole_image=(MAX_SIDE, SIDE_MULTIPLE), stored_size=None)
SQUARE = model_input.InputContract(image_size=64)


def _model(head, pooling):
    """A small network whose outputs differ by photo: random head weights, and batch norm
    statistics taken from one batch (at their initial ones every feature is zero)."""
    config = ml_collections.ConfigDict({
        "backbone": "mobilenet", "alpha": 0.25, "weights": "none", "dropout": 0.0, "batchnorm_momentum": 0.01,
        "head": head, "binary_l2": 0.1, "pooling": pooling, "spp_levels": (1, 2, 4),
    })
    model, _ = models.build_model(config, 64)
    kernel = heads.of(model).dense.kernel
    kernel.assign(np.random.default_rng(0).normal(0, 0.3, kernel.shape))
    model(np.random.default_rng(1).uniform(0, 255, (8, 64, 64, 3)).astype(np.float32), training=True)
    return model


def _png(height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_binary_pyramid_model_scores_whole_photos_as_the_evaluation_does(tmp_path):
    model = _model("binary", "spp")
    export_dir = str(tmp_path / "binary_spp")
    export.export(model, WHOLE, export_dir, info={})
    loaded = tf.saved_model.load(export_dir)
    photos = [_png(120, 200, 0), _png(160, 90, 1)]  # wide, then tall
    served = loaded.signatures[signature.SIGNATURE](**{signature.IMAGES: tf.constant(photos)})
    assert set(served) == {signature.MEAN, signature.PROBABILITY_BEAUTIFUL}
    # 120 x 200: longer side 96, shorter 57.6 -> 64; 160 x 90: 96, and 54 -> 48.
    probabilities, means = served[signature.PROBABILITY_BEAUTIFUL].numpy(), served[signature.MEAN].numpy()
    for photo, shape, probability, mean in zip(photos, [(64, 96), (96, 48)], probabilities, means):
        pixels = WHOLE.from_photo(photo)
        assert pixels.shape[:2] == shape
        expected = heads.of(model).outputs(model(pixels[None].astype(np.float32), training=False))
        assert probability == pytest.approx(float(expected[heads.PROBABILITY_BEAUTIFUL][0]), abs=1e-5)
        assert mean == pytest.approx(float(expected[heads.MEAN][0]), abs=1e-4)
    assert len(set(means.round(5))) == 2
    wide = tf.constant(np.zeros([2, 64, 96, 3], np.uint8))
    by_pixels = loaded.signatures[signature.PIXELS_SIGNATURE](**{signature.PIXELS: wide})
    assert set(by_pixels) == {signature.MEAN, signature.PROBABILITY_BEAUTIFUL} and by_pixels[signature.MEAN].shape == (2,)


@pytest.fixture(scope="module")
def pyramid_export(tmp_path_factory) -> str:
    """A distribution model with pyramid pooling, exported once with two TFLite kinds."""
    export_dir = str(tmp_path_factory.mktemp("export") / "spp")
    export.export(_model("distribution", "spp"), WHOLE, export_dir, info={}, tflite=("float32", "dynamic_int8"))
    return export_dir


def test_a_pyramid_model_converts_to_tflite_that_takes_each_photo_at_its_own_shape(pyramid_export):
    export_dir = pyramid_export
    served = tf.saved_model.load(export_dir).signatures[signature.PIXELS_SIGNATURE]
    rng = np.random.default_rng(2)
    photos = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(1, 64, 96, 3), (1, 96, 48, 3), (1, 96, 96, 3)]]
    expected = np.array([served(**{signature.PIXELS: tf.constant(photo)})[signature.MEAN].numpy()[0] for photo in photos])
    assert np.ptp(expected) > 1e-3
    for kind in ("float32", "dynamic_int8"):
        runner = tf.lite.Interpreter(model_path=export.tflite_path(export_dir, kind)).get_signature_runner(signature.PIXELS_SIGNATURE)
        means = np.array([runner(**{signature.PIXELS: photo})[signature.MEAN][0] for photo in photos])
        assert np.abs(means - expected).max() <= export.TFLITE_MEAN_TOLERANCE[kind], kind


def test_predict_scores_whole_photos_as_the_bytes_signature_batching_by_shape(pyramid_export, tmp_path):
    export_dir = pyramid_export
    loaded = predict.load_model(export_dir)
    assert loaded.contract == WHOLE
    shapes = [(120, 200), (160, 90), (300, 500), (96, 96), (90, 160)]  # two of them resize to 64 x 96
    photos = {str(tmp_path / f"{index}.png"): _png(*shape, index) for index, shape in enumerate(shapes)}
    for path, data in photos.items():
        pathlib.Path(path).write_bytes(data)
    calls = []
    score = loaded.score
    counted = dataclasses.replace(loaded, score=lambda **pixels: calls.append(tuple(pixels[signature.PIXELS].shape[:3])) or score(**pixels))
    report = predict.score_files(counted, sorted(photos) + [str(tmp_path / "absent.png")], batch_size=4, progress=False)
    assert len(report.scores) == 5 and [f.path for f in report.failures] == [str(tmp_path / "absent.png")]
    assert sorted(calls) == [(1, 48, 96), (1, 96, 48), (1, 96, 96), (2, 64, 96)]
    served = tf.saved_model.load(export_dir).signatures[signature.SIGNATURE]
    for result in report.scores:
        expected = served(**{signature.IMAGES: tf.constant([photos[result.path]])})
        # The same pixels (test_scoring_pixels.py), a batch of one or two: float noise alone.
        assert result.mean == pytest.approx(float(expected[signature.MEAN][0]), abs=1e-5)
        np.testing.assert_allclose(result.distribution, expected[signature.DISTRIBUTION][0].numpy(), atol=1e-6)
    assert len({round(s.mean, 4) for s in report.scores}) > 1


def test_a_model_without_its_input_contract_is_a_one_line_error(pyramid_export, tmp_path):
    export_dir = str(tmp_path / "spp")
    shutil.copytree(pyramid_export, export_dir)
    (pathlib.Path(export_dir) / signature.EXTRA_DIR / signature.INFO_FILE).unlink()
    with pytest.raises(predict.NotASavedModelError, match="does not say how photos become the model's input.*export the run again"):
        predict.load_model(export_dir)


def test_a_regression_model_is_scored_by_its_mean_alone(tmp_path):
    model = _model("regression", "avg")
    export_dir = str(tmp_path / "regression")
    export.export(model, SQUARE, export_dir, info={})
    paths = []
    for seed in range(3):
        paths.append(str(tmp_path / f"{seed}.png"))
        with open(paths[-1], "wb") as file:
            file.write(_png(80, 100, seed))
    report = predict.score_files(predict.load_model(export_dir), paths, progress=False)
    assert len(report.scores) == 3 and not report.failures
    for score in report.scores:
        assert 1.0 <= score.mean <= 10.0
        assert score.std is None and score.distribution is None and score.probability_beautiful is None
    table = predict.format_scores(report.scores, "table").splitlines()
    assert table[1].split()[3:5] == ["–", "–"]
