"""Evaluation report, the SavedModel's two signatures, the TFLite models and the predict command.

Scores are compared on a purpose-built tiny network (`_responsive_model`) whose mean
score moves by tenths when a photo is turned and by ten-thousandths with a grey level of
rounding, so that "within 1e-3" can fail. (The briefly trained NIMA of the shared fixture
scores every photo the same; it checks the export command itself.) Every path is held to
the evaluation's own scores photo by photo in test_score_parity.py.
"""

import csv
import io
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import html_tree
import image_zoo
import scoring_cases
from ava_tfds.ava import features
from serving import export, graph_decode, predict, signature
from trainer import evaluate, heads, input_pipeline, model_input, run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 64
CONTRACT = model_input.InputContract(image_size=SIZE)
# The same pixels through two signatures or batch sizes: float noise alone.
SAME_PIXELS = 1e-5
# One photo turned by EXIF and the same photo stored upright: the JPEG coding of a turned copy differs.
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
    export.export(model, CONTRACT, export_dir, info={}, tflite=export.TFLITE_KINDS)
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
    stored = json.loads((eval_dir / run_dir.METRICS_FILE).read_text())
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


def test_evaluation_writes_one_row_per_photo_that_the_metrics_agree_with(trained_workdir):
    evaluate.evaluate_run(trained_workdir, "test")
    eval_dir = pathlib.Path(trained_workdir) / evaluate.EVAL_DIR
    rows = pd.read_csv(eval_dir / evaluate.PREDICTIONS_FILE)
    config = run_dir.load_config(trained_workdir)
    # The dataset as TFDS reads it, every feature: not through the trainer's reader.
    dataset = tfds.load(config.dataset.name, split="test", data_dir=config.dataset.data_dir,
                        decoders={features.IMAGE: tfds.decode.SkipDecoding()})
    records = {int(r[features.IMAGE_ID]): r for r in dataset.as_numpy_iterator()}
    assert sorted(rows["image_id"]) == sorted(records)
    votes = [f"p{score}" for score in range(1, 11)]
    assert list(rows.columns) == ["image_id", "true_mean", "true_std", *(f"true_{v}" for v in votes), *(f"predicted_{v}" for v in votes),
                                  "predicted_mean", "predicted_std"]
    for row in rows.itertuples():
        record = records[row.image_id]
        assert row.true_mean == pytest.approx(float(record[features.MEAN_SCORE]), abs=1e-5)
        assert row.true_std == pytest.approx(float(record[features.STD_SCORE]), abs=1e-5)
        predicted = np.array([getattr(row, f"predicted_{v}") for v in votes])
        assert row.predicted_mean == pytest.approx(predicted @ np.arange(1, 11), abs=1e-4)


def test_both_signatures_score_the_test_split_as_the_evaluation_does(responsive, signatures, demo_config):
    """The pixel signature on the evaluation's pixels gives the evaluation's scores; the
    bytes signature on a stored photo gives what predict's path gives that file."""
    model, _ = responsive
    _, serve_images, serve_pixels = signatures
    demo_config.input.image_size = SIZE
    batches = list(input_pipeline.eval_dataset(demo_config, "test", 64))
    evaluated_mean = np.concatenate([model(tf.cast(b[input_pipeline.PIXELS], tf.float32), training=False).numpy() for b in batches]) @ np.arange(1, 11)
    pixels = np.concatenate([b[input_pipeline.PIXELS].numpy() for b in batches])
    np.testing.assert_allclose(_mean_of_pixels(serve_pixels, pixels), evaluated_mean, atol=SAME_PIXELS)
    assert np.ptp(evaluated_mean) > 0.05  # the photos do score differently
    encoded = _test_split(demo_config)
    from_bytes = serve_images(**{signature.IMAGES: tf.constant(encoded)})
    from_files = _mean_of_pixels(serve_pixels, np.stack([CONTRACT.from_photo(data) for data in encoded]))
    np.testing.assert_allclose(from_bytes[signature.MEAN].numpy(), from_files, atol=SAME_PIXELS)


def test_jpeg_png_gif_bmp_webp_of_any_size_batched_or_alone(responsive, signatures):
    model, _ = responsive
    _, serve_images, _ = signatures
    rng = np.random.default_rng(0)
    kinds = [((300, 200), "JPEG"), ((64, 64), "PNG"), ((97, 411), "GIF"), ((1000, 750), "JPEG"), ((50, 80), "BMP")]
    kinds += [((70, 70), "WEBP")] if graph_decode.READS_WEBP else []  # WebP from TF 2.20
    photos = [image_zoo.encode(Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)), fmt) for (h, w), fmt in kinds]
    pixels = np.stack([CONTRACT.from_photo(p) for p in photos]).astype(np.float32)
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
    # What the README tells a client that prepares photos itself: the build's bilinear squash
    # to 256 and its JPEG at 95 (Pillow), the exact IDCT, then the antialiased resize, rounded.
    stored = io.BytesIO()
    Image.open(files[name]).convert("RGB").resize((256, 256), Image.Resampling.BILINEAR).save(stored, "JPEG", quality=95)
    decoded = tf.io.decode_jpeg(stored.getvalue(), dct_method="INTEGER_ACCURATE")
    pixels = tf.cast(tf.round(tf.image.resize(tf.cast(decoded, tf.float32), [size, size], antialias=True)), tf.uint8)
    return serve_pixels(pixels=pixels[None])["mean"].numpy()[0].item()
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
    assert abs(upright["bytes"] - upright["pixels"]) < SAME_PIXELS
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
    for score in scored:
        case = cases[names[score["path"]]]
        # The pixels themselves are checked against the references in test_scoring_pixels.py.
        pixels = predict.prepare(score["path"], CONTRACT)
        assert abs(score["mean"] - _mean_of_pixels(serve_pixels, pixels[None])[0]) < SAME_PIXELS, case.name
        if case.in_graph:
            by_bytes = serve_images(**{signature.IMAGES: tf.constant([case.data])})[signature.MEAN].numpy()[0]
            # TensorFlow's own CMYK conversion is half a grey level away, which moves this network by up to 1e-2.
            allowed = 10 * SAME_PHOTO if case.name in scoring_cases.TF_CMYK_CONVERSION else SAME_PIXELS
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
    pixels = np.stack([CONTRACT.from_photo(data) for data in _test_split(demo_config)])
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
    assert model_input.InputContract.from_json(info[signature.INPUT_CONTRACT]) == CONTRACT
    assert sorted(info["tflite"]) == sorted(export.TFLITE_KINDS)


def test_export_command_writes_both_signatures_the_keras_model_and_the_tflite_asked_for(exported, trained_workdir):
    loaded = tf.saved_model.load(exported)
    assert sorted(loaded.signatures) == sorted([signature.SIGNATURE, signature.PIXELS_SIGNATURE])
    assert (pathlib.Path(exported) / signature.EXTRA_DIR / export.KERAS_FILE).stat().st_size > 0
    info = json.loads((pathlib.Path(exported) / signature.EXTRA_DIR / signature.INFO_FILE).read_text())
    checked = info["tflite"]["dynamic_int8"]
    assert (checked["file"], checked["mean_tolerance"]) == ("nima_dynamic_int8.tflite", export.TFLITE_MEAN_TOLERANCE["dynamic_int8"])
    config = run_dir.load_config(trained_workdir)
    validation = sum(1 for _ in input_pipeline.eval_records(config, config.dataset.eval_split))
    measured = checked["measured"]
    assert measured["photos"] == min(validation, 256) and "spearman" in measured
    assert 0 <= measured["mean_abs_diff_of_mean"] <= measured["max_abs_diff_of_mean"] <= checked["mean_tolerance"]
    size = run_dir.load_config(trained_workdir).input.image_size
    runner = tf.lite.Interpreter(model_path=export.tflite_path(exported, "dynamic_int8")).get_signature_runner(signature.PIXELS_SIGNATURE)
    photo = np.asarray(image_zoo.photo(size, size))[None]
    tflite_mean = runner(**{signature.PIXELS: photo})[signature.MEAN][0]
    saved_mean = _mean_of_pixels(loaded.signatures[signature.PIXELS_SIGNATURE], photo)[0]
    assert 1 <= tflite_mean <= 10 and abs(tflite_mean - saved_mean) <= export.TFLITE_MEAN_TOLERANCE["dynamic_int8"]


def test_a_tflite_model_past_its_tolerance_is_refused_and_the_rest_is_written(responsive, demo_config, tmp_path, monkeypatch):
    model, _ = responsive
    demo_config.input.image_size = SIZE
    photos = [CONTRACT.from_photo(data) for data in _test_split(demo_config)[:8]]
    expected = [_mean_of_pixels(lambda **kw: export.outputs(model, tf.cast(kw[signature.PIXELS], tf.float32)), photo[None])[0]
                for photo in photos]
    monkeypatch.setitem(export.TFLITE_MEAN_TOLERANCE, "dynamic_int8", 0.0)  # any rounding strays past it
    export_dir = tmp_path / "refused"
    with pytest.raises(export.TfliteOutOfTolerance, match=r"dynamic_int8: its mean score differs .* on 8 validation photos"):
        export.export(model, CONTRACT, str(export_dir), info={}, tflite=("float32", "dynamic_int8"), check_photos=photos)
    assert not pathlib.Path(export.tflite_path(str(export_dir), "dynamic_int8")).exists()
    runner = tf.lite.Interpreter(model_path=export.tflite_path(str(export_dir), "float32")).get_signature_runner(signature.PIXELS_SIGNATURE)
    np.testing.assert_allclose([runner(**{signature.PIXELS: p[None]})[signature.MEAN][0] for p in photos], expected, atol=1e-4)
    info = json.loads((export_dir / signature.EXTRA_DIR / signature.INFO_FILE).read_text())
    assert info["tflite"]["dynamic_int8"]["file"] is None and info["tflite"]["dynamic_int8"]["measured"]["photos"] == 8
    assert info["tflite"]["float32"]["measured"]["max_abs_diff_of_mean"] <= export.TFLITE_MEAN_TOLERANCE["float32"]
    assert tf.saved_model.load(str(export_dir)).signatures[signature.PIXELS_SIGNATURE] is not None


def test_a_photo_the_evaluation_cannot_decode_is_named_and_left_out_of_the_figures(trained_workdir, monkeypatch):
    """The build stores only photos that decode; should a stored one still fail, the
    evaluation scores the others and names it, rather than drop it unsaid."""
    config = run_dir.load_config(trained_workdir)
    victim = sorted(int(r[features.IMAGE_ID]) for r in input_pipeline.eval_records(config, "test").as_numpy_iterator())[3]
    records = input_pipeline.eval_records

    def with_a_broken_photo(config, split):
        def break_victim(record):
            broken = tf.where(record[features.IMAGE_ID] == victim, tf.constant(b"\xff\xd8 not a JPEG"), record[features.IMAGE])
            return {**record, features.IMAGE: broken}

        return records(config, split).map(break_victim)

    monkeypatch.setattr(input_pipeline, "eval_records", with_a_broken_photo)
    result = evaluate.evaluate_run(trained_workdir, "test")
    assert result["unscored"] == {"count": 1, "image_ids": [victim]}
    assert result["model"]["num_images"] == input_pipeline.num_examples(config, "test") - 1
    eval_dir = pathlib.Path(trained_workdir) / evaluate.EVAL_DIR
    assert victim not in set(pd.read_csv(eval_dir / evaluate.PREDICTIONS_FILE)["image_id"])
    assert f"1 photos of the test split could not be decoded and are in none of these figures (ids {victim})" in (
        eval_dir / evaluate.REPORT_FILE).read_text()


def test_the_ranking_page_lists_what_could_not_be_scored_and_writes_each_thumbnail_as_its_batch_is_scored(tmp_path):
    page = predict.RankingPage(str(tmp_path / "page.html"))
    scored = [predict.Score(f"{tmp_path}/photos/{n}.jpg", 5.0 + n, 1.0, tuple([0.1] * 10)) for n in range(3)]
    for score in scored:  # one batch of one photo at a time, as score_files calls it
        page.add([score], np.full((1, 40, 60, 3), 200, np.uint8))
        written = sorted(pathlib.Path(page.folder).iterdir())
        assert len(written) == len(page.thumbnails) and all(isinstance(v, str) for v in page.thumbnails.values())
    failures = [predict.Failure(f"{tmp_path}/photos/broken.jpg", "truncated: image file is truncated"),
                predict.Failure("gs://b/missing/*.jpg", "no file matches this pattern")]
    report = predict.Report(sorted(scored, key=lambda s: -s.mean), [failures[0]], [f"{tmp_path}/photos/notes.txt"])
    page.write(report, failures, "model-dir", model_input.InputContract(image_size=64))
    tree = html_tree.parse(tmp_path / "page.html")
    rows = [[cell.text for cell in row.find_all("td")] for row in tree.find("table", id="failures").find_all("tr", class_="failure")]
    assert rows == [[f.path, f.reason] for f in failures]
    assert [item.text for item in tree.find("ul", id="not-images").find_all("li")] == [f"{tmp_path}/photos/notes.txt"]
    assert [c.attrs["data-name"] for c in tree.find_all("li", class_="card")] == [s.path for s in report.scores]
    assert Image.open(tmp_path / tree.find("img").attrs["src"]).size == (60, 40)  # never enlarged
