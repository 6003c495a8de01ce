"""Evaluation report, the SavedModel's two signatures, the TFLite models and the predict command.

Scores are compared on a purpose-built tiny network (`_responsive_model`) whose mean
score moves by tenths when a photo is turned and by ten-thousandths with a grey level of
rounding, so that "within 1e-3" can fail. (The briefly trained NIMA of the shared fixture
scores every photo the same; it checks the export command itself.)
"""

import csv
import io
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import image_zoo
import scoring_cases
from ava_core import images
from ava_tfds.ava import features
from serving import export, predict, signature
from trainer import evaluate, heads, input_pipeline, run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 64
# One photo through both signatures, or turned by EXIF and stored upright: what may differ
# is the rounding of predict's uint8 pixels and the JPEG coding of a turned copy.
SAME_PHOTO = 1e-3


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory) -> str:
    export_dir = str(tmp_path_factory.mktemp("export") / "nima")
    subprocess.run(
        [sys.executable, "-m", "serving.export", f"--workdir={trained_workdir}", f"--export_dir={export_dir}", "--tflite=dynamic_int8"],
        check=True, cwd=REPO, capture_output=True,
    )
    return export_dir


def _responsive_model() -> keras.Model:
    """Random weights on the mean colour of each quadrant, which a turned photo changes and
    a grey level of noise hardly moves, beside MobileNet's kinds of layer (a weight tensor
    of 1024, which TFLite's dynamic range quantisation needs before it quantises any)."""
    keras.utils.set_random_seed(0)
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(pixels)
    quadrants = keras.layers.Flatten()(keras.layers.AveragePooling2D(SIZE // 2)(x))
    y = keras.layers.Conv2D(32, 3, strides=2, padding="same")(x)
    y = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(y))
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(y)
    y = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(y))
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(32, 1)(y))
    features = keras.layers.Concatenate()([quadrants, y])
    random_weights = keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(0, 0.5))
    random_weights.build(features.shape)
    head = heads.DistributionHead()  # the export scores the model's own head
    model = keras.Model(pixels, head(features))
    head.dense.set_weights(random_weights.get_weights())
    return model


@pytest.fixture(scope="module")
def responsive(tmp_path_factory) -> tuple[keras.Model, str]:
    model = _responsive_model()
    export_dir = str(tmp_path_factory.mktemp("export") / "responsive")
    export.export(model, SIZE, export_dir, info={}, tflite=export.TFLITE_KINDS)
    return model, export_dir


@pytest.fixture(scope="module")
def signatures(responsive):
    loaded = tf.saved_model.load(responsive[1])
    return loaded, loaded.signatures[signature.SIGNATURE], loaded.signatures[signature.PIXELS_SIGNATURE]


def _mean_of_pixels(pixel_signature, pixels: np.ndarray) -> np.ndarray:
    return pixel_signature(**{signature.PIXELS: tf.constant(pixels)})[signature.MEAN].numpy()


def _test_split(config) -> list[bytes]:
    return [record[features.IMAGE] for record in input_pipeline.eval_records(config, "test").as_numpy_iterator()]


def test_evaluation_writes_metrics_report_and_figures(trained_workdir):
    result = evaluate.evaluate_run(trained_workdir, "test")
    eval_dir = pathlib.Path(trained_workdir) / evaluate.EVAL_DIR
    stored = json.loads((eval_dir / evaluate.METRICS_FILE).read_text())
    config = run_dir.load_config(trained_workdir)
    assert stored["model"]["num_images"] == input_pipeline.num_examples(config, "test")
    assert stored["baseline"]["srcc_mean"] == 0.0
    assert stored["model"] == pytest.approx(result["model"])
    report = (eval_dir / evaluate.REPORT_FILE).read_text()
    assert "NIMA MobileNet (Talebi & Milanfar 2018) | – | 0.8036 | 0.0810 | 0.5180 | 0.5100" in report
    assert "Murray et al. 2012 | – | 0.6800" in report
    for name in ("scatter.png", "mean_distributions.png", "error_by_bucket.png", "training_curves.png", "best_and_worst.png"):
        data = (eval_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


def test_both_signatures_score_the_test_split_as_the_evaluation_does(responsive, signatures, demo_config):
    """The evaluation decodes JPEGs with TensorFlow's fast IDCT (1.4 grey levels from the
    exact one on average), the signatures with the exact one, as Pillow and so the build
    do: a few hundredths of a score apart here, where a missing resize or preprocessing
    would be tenths. Predict's pixels through the pixel signature: the same scores."""
    model, _ = responsive
    _, serve_images, serve_pixels = signatures
    demo_config.input.image_size = SIZE
    evaluated = [model(batch[input_pipeline.PIXELS], training=False).numpy() for batch in input_pipeline.eval_dataset(demo_config, "test", 64)]
    evaluated_mean = np.concatenate(evaluated) @ np.arange(1, 11)
    encoded = _test_split(demo_config)
    from_bytes = serve_images(**{signature.IMAGES: tf.constant(encoded)})
    np.testing.assert_allclose(from_bytes[signature.MEAN].numpy(), evaluated_mean, atol=0.05)
    assert np.ptp(evaluated_mean) > 0.05  # the photos do score differently
    normalised = np.stack([images.decode(data, predict.scoring_policy(SIZE)).pixels for data in encoded])
    # Photos of four times the model's size: predict decodes them at half scale (DCT), which
    # moves this network by up to twice the rounding's effect.
    np.testing.assert_allclose(_mean_of_pixels(serve_pixels, normalised), from_bytes[signature.MEAN].numpy(), atol=2 * SAME_PHOTO)


def test_jpeg_png_gif_bmp_webp_of_any_size_batched_or_alone(responsive, signatures):
    model, _ = responsive
    _, serve_images, _ = signatures
    rng = np.random.default_rng(0)
    photos = [
        image_zoo.encode(Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)), fmt)
        for (h, w), fmt in [((300, 200), "JPEG"), ((64, 64), "PNG"), ((97, 411), "GIF"), ((1000, 750), "JPEG"), ((50, 80), "BMP"), ((70, 70), "WEBP")]
    ]
    decoded = [np.asarray(Image.open(io.BytesIO(p)).convert("RGB"), dtype=np.float32) for p in photos]
    pixels = tf.stack([tf.image.resize(d, [SIZE, SIZE], antialias=True) for d in decoded])
    expected = model(pixels, training=False).numpy()
    batched = serve_images(**{signature.IMAGES: tf.constant(photos)})[signature.DISTRIBUTION].numpy()
    np.testing.assert_allclose(batched, expected, atol=1e-5)
    for photo, row in zip(photos, expected):
        alone = serve_images(**{signature.IMAGES: tf.constant([photo])})[signature.DISTRIBUTION].numpy()[0]
        np.testing.assert_allclose(alone, row, atol=1e-5)


_PLAIN_TENSORFLOW = """
import io, json, sys
import numpy as np, tensorflow as tf
from PIL import Image
loaded = tf.saved_model.load(sys.argv[1])
serve_images, serve_pixels = loaded.signatures["serving_default"], loaded.signatures["score_pixels"]
files = json.loads(open(sys.argv[2]).read())
def by_bytes(name):
    return serve_images(images=tf.constant([open(files[name], "rb").read()]))["mean"].numpy()[0].item()
def by_pixels(name, size):
    image = Image.open(files[name]).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return serve_pixels(pixels=tf.constant(np.asarray(image)[None]))["mean"].numpy()[0].item()
size = serve_pixels.structured_input_signature[1]["pixels"].shape[1]
scores = {name: {"bytes": by_bytes(name), "pixels": by_pixels(name, size)} for name in files}
project = [m for m in sys.modules if m.split(".")[0] in ("trainer", "serving", "ava_core", "beam_pipelines", "ava_tfds", "configs")]
specs = {key: {name: [str(spec.dtype.name), spec.shape.as_list()] for name, spec in function.structured_input_signature[1].items()}
         for key, function in loaded.signatures.items()}
outputs = {key: sorted(function.structured_outputs) for key, function in loaded.signatures.items()}
print(json.dumps({"scores": scores, "project": project, "specs": specs, "outputs": outputs}))
"""


def test_a_photo_turned_by_exif_scores_as_its_upright_copy_in_tensorflow_alone(responsive, tmp_path):
    """Every orientation, both TIFF byte orders, through `tf.saved_model.load` in a process
    that imports TensorFlow, numpy and Pillow only: the tagged photo by bytes, its upright
    copy by bytes and (decoded by Pillow) by pixels score the same."""
    files = {}
    for orientation in scoring_cases.STORED:
        for order in ("II", "MM"):
            files[f"{orientation}-{order}"] = scoring_cases.oriented_jpeg(orientation, order, quality=100, subsampling=0)
        stored = np.ascontiguousarray(scoring_cases.STORED[orientation](scoring_cases.upright()))
        files[f"{orientation}-untagged"] = image_zoo.encode(Image.fromarray(stored), "JPEG", quality=100, subsampling=0)
    for name, data in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps({name: str(tmp_path / f"{name}.jpg") for name in files}))
    run = subprocess.run(
        [sys.executable, "-c", _PLAIN_TENSORFLOW, responsive[1], str(listing)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["project"] == []
    scores = result["scores"]
    upright = scores["1-untagged"]
    assert abs(upright["bytes"] - upright["pixels"]) < SAME_PHOTO
    for orientation in range(2, 9):
        for order in ("II", "MM"):
            assert abs(scores[f"{orientation}-{order}"]["bytes"] - upright["bytes"]) < SAME_PHOTO, (orientation, order)
        # Without its tag the same stored photo is scored sideways: the comparison can fail.
        assert abs(scores[f"{orientation}-untagged"]["bytes"] - upright["bytes"]) > 10 * SAME_PHOTO, orientation
    assert result["specs"] == {
        signature.SIGNATURE: {signature.IMAGES: ["string", [None]]},
        signature.PIXELS_SIGNATURE: {signature.PIXELS: ["uint8", [None, SIZE, SIZE, 3]]},
    }
    assert result["outputs"] == {key: sorted(signature.OUTPUTS) for key in (signature.SIGNATURE, signature.PIXELS_SIGNATURE)}


def test_predict_scores_every_format_whatever_its_name_and_reports_the_rest(responsive, signatures, tmp_path):
    """The `scoring_cases` library with misleading names, stray files and broken photos,
    through the command: every photo scored from predict's pixels, those TensorFlow decodes
    as the bytes signature scores them, the rest reported."""
    _, serve_images, serve_pixels = signatures
    folder = tmp_path / "library"
    (folder / "nested").mkdir(parents=True)
    cases = scoring_cases.cases()
    names = {}
    for index, (name, case) in enumerate(sorted(cases.items())):
        path = folder / ("nested" if index % 3 == 0 else "") / f"IMG_{index:04d}{('.JPG', '.png', '')[index % 3]}"
        path.write_bytes(case.data)
        names[str(path)] = name
    (folder / "notes.txt").write_text("to sort\n")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "IMG_0001.AAE").write_text("<?xml version='1.0'?><plist/>")
    (folder / "truncated.jpg").write_bytes(image_zoo.encode(image_zoo.photo(400, 300), "JPEG")[:4000])
    (folder / "icon.png").write_bytes(image_zoo.encode(image_zoo.photo(20, 20), "PNG"))
    ranking = tmp_path / "ranking.json"

    run = subprocess.run(
        [sys.executable, "-m", "serving.predict", f"--model={responsive[1]}", "--format=json", f"--output={ranking}",
         "--top=3", "--batch_size=4", str(folder), f"{folder}/nested/*", str(tmp_path / "missing.jpg")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert run.returncode == 1, run.stderr[-3000:]
    scored = json.loads(ranking.read_text())
    assert sorted(s["path"] for s in scored) == sorted(names)
    means = [s["mean"] for s in scored]
    assert means == sorted(means, reverse=True)
    assert json.loads(run.stdout) == scored[:3]
    policy = predict.scoring_policy(SIZE)
    for score in scored:
        case = cases[names[score["path"]]]
        # The pixels themselves are checked against the references in test_scoring_pixels.py.
        pixels = predict.prepare(score["path"], policy)
        assert abs(score["mean"] - _mean_of_pixels(serve_pixels, pixels[None])[0]) < 1e-5, case.name
        if case.in_graph:
            by_bytes = serve_images(**{signature.IMAGES: tf.constant([case.data])})[signature.MEAN].numpy()[0]
            # TensorFlow's own 8-bit conversions are half a grey level away, which moves this network by up to 1e-2.
            allowed = 10 * SAME_PHOTO if case.name in scoring_cases.TF_8BIT_CONVERSIONS else SAME_PHOTO
            assert abs(score["mean"] - by_bytes) <= allowed, (case.name, score["mean"], by_bytes)
    errors = run.stderr.splitlines()
    for name, reason in [("truncated.jpg", "truncated: "), ("icon.png", "too small: 20x20"), ("missing.jpg", "no such file or folder")]:
        assert sum(name in line and reason in line and line.startswith("could not score") for line in errors) == 1, (name, run.stderr[-3000:])
    skipped = [line for line in errors if line.startswith("skipped")]
    assert skipped == [f"skipped 3 files that are not images: {folder}/IMG_0001.AAE, {folder}/empty.jpg, {folder}/notes.txt"]
    assert errors[-1] == f"scored {len(names)} photos (ranking in {ranking}), 3 failed, 3 not images"


def test_csv_and_table_formats():
    scores = [predict.Score("a.jpg", 6.5, 1.2, (0, 0, 0, 0.1, 0.2, 0.4, 0.2, 0.1, 0, 0)), predict.Score("b, c.png", 4.25, 2.0, (0.1,) * 10)]
    header, row, _ = predict.format_scores(scores, "table").splitlines()
    assert header.split()[:4] == ["rank", "path", "mean", "std"]
    assert row.split()[:4] == ["1", "a.jpg", "6.50", "1.20"] and "█" in row
    rows = list(csv.DictReader(io.StringIO(predict.format_scores(scores, "csv"))))
    assert [(r["rank"], r["path"], r["mean"], r["p6"]) for r in rows] == [("1", "a.jpg", "6.5000", "0.4000"), ("2", "b, c.png", "4.2500", "0.1000")]


def test_tflite_models_score_the_test_split_as_the_saved_model(responsive, signatures, demo_config):
    """Each TFLite kind, one photo a call as on a phone, on the sample's test split as
    predict normalises it, within its documented tolerance; its weights quantised as named."""
    _, export_dir = responsive
    _, _, serve_pixels = signatures
    demo_config.input.image_size = SIZE
    pixels = np.stack([images.decode(data, predict.scoring_policy(SIZE)).pixels for data in _test_split(demo_config)])
    expected = _mean_of_pixels(serve_pixels, pixels)
    assert np.ptp(expected) > 0.05
    weights = {"float32": np.float32, "float16": np.float16, "dynamic_int8": np.int8}
    for kind in export.TFLITE_KINDS:
        interpreter = tf.lite.Interpreter(model_path=export.tflite_path(export_dir, kind))
        assert {np.float16, np.int8} & {t["dtype"] for t in interpreter.get_tensor_details()} == {np.float16, np.int8} & {weights[kind]}
        runner = interpreter.get_signature_runner(signature.PIXELS_SIGNATURE)
        means = np.array([runner(**{signature.PIXELS: photo[None]})[signature.MEAN][0] for photo in pixels])
        assert np.abs(means - expected).max() <= export.TFLITE_MEAN_TOLERANCE[kind], kind
    info = json.loads((pathlib.Path(export_dir) / signature.EXTRA_DIR / signature.INFO_FILE).read_text())
    assert info["image_size"] == SIZE and sorted(info["tflite"]) == sorted(export.TFLITE_KINDS)


def test_export_command_writes_both_signatures_the_keras_model_and_the_tflite_asked_for(exported, trained_workdir):
    loaded = tf.saved_model.load(exported)
    assert sorted(loaded.signatures) == sorted([signature.SIGNATURE, signature.PIXELS_SIGNATURE])
    assert (pathlib.Path(exported) / signature.EXTRA_DIR / export.KERAS_FILE).stat().st_size > 0
    info = json.loads((pathlib.Path(exported) / signature.EXTRA_DIR / signature.INFO_FILE).read_text())
    assert info["tflite"] == {"dynamic_int8": {"file": "nima_dynamic_int8.tflite", "mean_tolerance": export.TFLITE_MEAN_TOLERANCE["dynamic_int8"]}}
    size = run_dir.load_config(trained_workdir).input.image_size
    runner = tf.lite.Interpreter(model_path=export.tflite_path(exported, "dynamic_int8")).get_signature_runner(signature.PIXELS_SIGNATURE)
    photo = np.asarray(image_zoo.photo(size, size))[None]
    tflite_mean = runner(**{signature.PIXELS: photo})[signature.MEAN][0]
    saved_mean = _mean_of_pixels(loaded.signatures[signature.PIXELS_SIGNATURE], photo)[0]
    assert 1 <= tflite_mean <= 10 and abs(tflite_mean - saved_mean) <= export.TFLITE_MEAN_TOLERANCE["dynamic_int8"]
