"""Evaluation report, SavedModel export round trip, and the predict command, on a tiny trained run."""

import csv
import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ava_tfds.ava import features
from serving import export, predict, signature
from trainer import evaluate, input_pipeline, metrics, predictions, run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory) -> str:
    export_dir = str(tmp_path_factory.mktemp("export") / "nima")
    subprocess.run(
        [sys.executable, "-m", "serving.export", f"--workdir={trained_workdir}", f"--export_dir={export_dir}"],
        check=True, cwd=REPO, capture_output=True,
    )
    return export_dir


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


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


def test_exported_scores_equal_the_evaluation_scores(trained_workdir, exported):
    config = run_dir.load_config(trained_workdir)
    model, _ = run_dir.restore_model(trained_workdir, config)
    expected = predictions.predict_split(model, config, "test")
    encoded = {int(r[features.IMAGE_ID]): r[features.IMAGE] for r in input_pipeline.eval_records(config, "test").as_numpy_iterator()}
    serve = tf.saved_model.load(exported).signatures[signature.SIGNATURE]
    ids = [int(i) for i in expected.image_ids]
    outputs = serve(images=tf.constant([encoded[i] for i in ids]))
    np.testing.assert_allclose(outputs["distribution"].numpy(), expected.predicted_distribution, atol=1e-5)
    np.testing.assert_allclose(outputs["mean"].numpy(), metrics.mean_score(expected.predicted_distribution), atol=1e-4)
    np.testing.assert_allclose(outputs["std"].numpy(), metrics.std_score(expected.predicted_distribution), atol=1e-4)


def test_jpeg_and_png_of_any_size_batched_or_alone(trained_workdir, exported):
    config = run_dir.load_config(trained_workdir)
    model, _ = run_dir.restore_model(trained_workdir, config)
    rng = np.random.default_rng(0)
    photos = [_encode(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), fmt) for (h, w), fmt in
              [((300, 200), "JPEG"), ((64, 64), "PNG"), ((97, 411), "PNG"), ((1000, 750), "JPEG")]]
    pixels = tf.stack([input_pipeline.decode_for_model(p, config.input.image_size) for p in photos])
    expected = model(pixels, training=False).numpy()
    serve = tf.saved_model.load(exported).signatures[signature.SIGNATURE]
    batched = serve(images=tf.constant(photos))["distribution"].numpy()
    np.testing.assert_allclose(batched, expected, atol=1e-5)
    for photo, row in zip(photos, expected):
        np.testing.assert_allclose(serve(images=tf.constant([photo]))["distribution"].numpy()[0], row, atol=1e-5)


def test_saved_model_loads_with_tensorflow_alone(exported, tmp_path):
    photo = _encode(np.full((50, 80, 3), 120, np.uint8), "JPEG")
    (tmp_path / "photo.jpg").write_bytes(photo)
    script = (
        "import sys, tensorflow as tf\n"
        f"serve = tf.saved_model.load({exported!r}).signatures['serving_default']\n"
        f"out = serve(images=tf.constant([open({str(tmp_path / 'photo.jpg')!r}, 'rb').read()]))\n"
        "assert out['distribution'].shape == (1, 10) and out['mean'].shape == (1,)\n"
        "project = [m for m in sys.modules if m.split('.')[0] in ('trainer', 'serving', 'ava_core', 'beam_pipelines', 'ava_tfds', 'configs')]\n"
        "assert not project, project\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True)
    shown = subprocess.run(
        ["saved_model_cli", "show", "--dir", exported, "--tag_set", "serve", "--signature_def", "serving_default"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "inputs['images']" in shown and "DT_STRING" in shown
    for output in ("distribution", "mean", "std"):
        assert f"outputs['{output}']" in shown
    assert (pathlib.Path(exported) / export.EXTRA_DIR / export.KERAS_FILE).stat().st_size > 0


def test_predict_ranks_good_photos_and_reports_each_bad_one(exported, tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(1)
    good = []
    for index in range(5):
        path = folder / ("nested" if index % 2 else "") / f"good{index}.jpg"
        path.write_bytes(_encode(rng.integers(0, 255, (120 + index * 30, 150, 3), dtype=np.uint8), "JPEG"))
        good.append(str(path))
    (folder / "alpha.png").write_bytes(_encode(rng.integers(0, 255, (80, 80, 4), dtype=np.uint8), "PNG"))
    good.append(str(folder / "alpha.png"))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_bytes(b"not a photo at all")
    (folder / "truncated.jpg").write_bytes(_encode(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8), "JPEG")[:4000])
    bad = {"empty.jpg": "empty file", "notes.jpg": "not a JPEG", "truncated.jpg": "cannot decode"}

    run = subprocess.run(
        [sys.executable, "-m", "serving.predict", f"--model={exported}", "--format=csv", "--batch_size=4", str(folder),
         str(tmp_path / "missing.jpg")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert run.returncode == 1
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert sorted(r["path"] for r in rows) == sorted(good)
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True) and [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in run.stderr.splitlines()), (name, run.stderr[-2000:])
    assert "missing.jpg: no such file or folder" in run.stderr

    top = subprocess.run(
        [sys.executable, "-m", "serving.predict", f"--model={exported}", "--format=json", "--top=2", f"{folder}/nested/*.jpg"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert top.returncode == 0, top.stderr[-2000:]
    scored = json.loads(top.stdout)
    assert len(scored) == 2 and all(s["path"].startswith(str(folder / "nested")) for s in scored)
    assert abs(sum(scored[0]["distribution"]) - 1) < 1e-4


def test_table_format_shows_rank_scores_and_a_bar():
    table = predict.format_scores([predict.Score("a.jpg", 6.5, 1.2, (0, 0, 0, 0.1, 0.2, 0.4, 0.2, 0.1, 0, 0))], "table")
    header, row = table.splitlines()
    assert header.split()[:4] == ["rank", "path", "mean", "std"]
    assert row.split()[:4] == ["1", "a.jpg", "6.50", "1.20"] and "█" in row
