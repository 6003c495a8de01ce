"""One score per photo: the evaluation's, whichever path scores the photo.

Photos of many sizes and kinds (a phone's 4032 x 3024 JPEG, small, panoramic and tall ones,
EXIF-rotated, progressive, PNG with and without alpha, grey, CMYK, Adobe RGB, 16-bit, GIF,
WebP, TIFF, HEIC) are built into an `ava` dataset by the real build command, scored by
`trainer.evaluate` (its `predictions.csv` is the reference), then by `serving.predict`,
by the SavedModel's bytes signature and by each TFLite kind, all from a run directory
whose best checkpoint is a small network with random weights that tells photos apart.

`python -m pytest tests/test_score_parity.py -s` prints the table of differences per path
and per kind that benchmarks/RESULTS.md records.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image
from scipy import stats

import html_tree
import icc_profiles
import image_zoo
import scoring_cases
from ava_core import ava_index, images, pages
from ava_tfds.ava import ava_dataset_builder, features
from configs import demo
from serving import export, graph_decode, predict, signature
from trainer import evaluate, heads, input_pipeline, loop, model_input, models, run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 64
# The same pixels, scored in batches of other sizes: float noise alone (the goal is 1e-4).
SAME_PIXELS = 1e-4
# What the bytes signature cannot replay in TensorFlow (`graph_decode`): CMYK, which its
# decoder converts its own way (half a grey level), and ICC profiles, which it ignores.
# Measured and printed here; bounded loosely, since the network decides how much they move
# (CMYK: 0.27 points on the bicubic squash, 0.60 on the bilinear one, from the same half
# grey level).
CONVERTED_BY_TENSORFLOW = {"cmyk": 1.0, "adobe-rgb": 3.0}
NOT_READ_BY_TENSORFLOW = {"tiff", "heic"} | (set() if graph_decode.READS_WEBP else {"webp"})


def _encode(pixels: np.ndarray, image_format: str, mode: str | None = None, **options) -> bytes:
    return image_zoo.encode(Image.fromarray(pixels, mode), image_format, **options)


def _photos() -> dict[str, bytes]:
    """name -> file: the kinds a photo library holds. The name's first word is its kind."""
    sideways = np.ascontiguousarray(scoring_cases.STORED[6](image_zoo.textured(1200, 900, 4)))
    grey16 = (image_zoo.textured(640, 480, 10)[..., 0].astype(np.uint16) * 257 + np.arange(640, dtype=np.uint16)[None, :] % 257)
    return {
        "jpeg-phone-4032x3024": _encode(image_zoo.textured(4032, 3024, 0), "JPEG", quality=92),
        "jpeg-small-200x150": _encode(image_zoo.textured(200, 150, 1), "JPEG", quality=90),
        "jpeg-panorama-3000x600": _encode(image_zoo.textured(3000, 600, 2), "JPEG", quality=90),
        "jpeg-tall-500x1400": _encode(image_zoo.textured(500, 1400, 3), "JPEG", quality=90),
        "jpeg-exif-rotated-900x1200": _encode(sideways, "JPEG", quality=90, exif=scoring_cases.exif_app1(6, "MM")),
        "jpeg-progressive-1600x1200": _encode(image_zoo.textured(1600, 1200, 5), "JPEG", quality=85, progressive=True),
        "jpeg-grey-900x700": _encode(image_zoo.textured(900, 700, 6)[..., 1], "JPEG", quality=90),
        "png-800x600": _encode(image_zoo.textured(800, 600, 7), "PNG"),
        "png-rgba-600x450": _encode(np.concatenate([image_zoo.textured(600, 450, 11), image_zoo.textured(600, 450, 12)[..., :1]], axis=-1), "PNG"),
        "gif-500x400": _encode(np.asarray(Image.fromarray(image_zoo.textured(500, 400, 13)).quantize(256).convert("RGB")), "GIF"),
        "webp-600x400": _encode(image_zoo.textured(600, 400, 14), "WEBP", lossless=True),
        "bmp-300x260": _encode(image_zoo.textured(300, 260, 15), "BMP"),
        "cmyk-800x600": scoring_cases.cmyk_case(image_zoo.textured(800, 600, 8)).data,
        "adobe-rgb-700x500": _encode(image_zoo.textured(700, 500, 16), "PNG", icc_profile=icc_profiles.icc_profile(icc_profiles.ADOBE_RGB)),
        "grey16-640x480": _encode(grey16, "PNG"),
        "tiff-500x400": _encode(image_zoo.textured(500, 400, 17), "TIFF", compression="tiff_lzw"),
        "heic-400x300": _encode(image_zoo.textured(400, 300, 18), "HEIF", quality=90),
    }


def _kind(name: str) -> str:
    return name.rsplit("-", 1)[0] if name.startswith(("adobe-rgb",)) else name.split("-")[0]


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """Every photo's mean score by each path, keyed by photo name."""
    root = tmp_path_factory.mktemp("parity")
    photos = _photos()
    ids = {name: 500_001 + index for index, name in enumerate(photos)}
    ava_dir, data_dir = _ava_layout(root / "ava", photos, ids), root / "tfds"
    _run("beam_pipelines.build", "--config=256", f"--ava_dir={ava_dir}", f"--output_dir={data_dir}", "--direct_num_workers=2")
    workdir = _random_run(root / "run", photos)
    evaluated_run = _run("trainer.evaluate", f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}")
    export_dir = str(root / "export")
    # Unchecked at export (the config points at no dataset): this module checks them itself.
    _run("serving.export", f"--workdir={workdir}", f"--export_dir={export_dir}", "--tflite_check_photos=0",
         *(f"--tflite={kind}" for kind in export.TFLITE_KINDS))
    photo_dir = root / "photos"
    photo_dir.mkdir()
    for name, data in photos.items():
        (photo_dir / name).write_bytes(data)  # no extension: the content decides
    ranking, page = root / "ranking.json", root / "pages" / "ranking.html"
    _run("serving.predict", f"--model={export_dir}", "--format=json", f"--output={ranking}", f"--html={page}",
         "--batch_size=5", str(photo_dir))

    eval_dir = pathlib.Path(workdir) / evaluate.EVAL_DIR
    evaluated = pd.read_csv(eval_dir / evaluate.PREDICTIONS_FILE).set_index("image_id")
    scores = {"evaluation": {name: float(evaluated.loc[ids[name], "predicted_mean"]) for name in photos}}
    scores["predict"] = {pathlib.Path(s["path"]).name: s["mean"] for s in json.loads(ranking.read_text())}
    loaded = tf.saved_model.load(export_dir)
    by_bytes = loaded.signatures[signature.SIGNATURE]
    scores["bytes"] = {
        name: float(by_bytes(**{signature.IMAGES: tf.constant([data])})[signature.MEAN][0])
        for name, data in photos.items() if _kind(name) not in NOT_READ_BY_TENSORFLOW
    }
    model = predict.load_model(export_dir)
    pixels = {name: model.contract.from_photo(data) for name, data in photos.items()}
    for kind in export.TFLITE_KINDS:
        runner = tf.lite.Interpreter(model_path=export.tflite_path(export_dir, kind)).get_signature_runner(signature.PIXELS_SIGNATURE)
        scores[f"tflite_{kind}"] = {name: float(runner(**{signature.PIXELS: p[None]})[signature.MEAN][0]) for name, p in pixels.items()}
    # The former path, as a check that this test can fail: the build's normalisation squashed
    # straight to the model's size, with neither the stored size nor its JPEG.
    straight = np.stack([images.decode(photos[name], images.ImagePolicy(resize_to=(SIZE, SIZE))).pixels for name in photos])
    means = model.score(**{signature.PIXELS: tf.constant(straight)})[signature.MEAN].numpy()
    scores["straight_squash"] = dict(zip(photos, means.astype(float)))
    _print_table(scores)
    return {
        **scores, "predictions.csv": evaluated, "metrics.json": json.loads((eval_dir / run_dir.METRICS_FILE).read_text()),
        "eval_dir": eval_dir, "evaluate_stderr": evaluated_run.stderr, "ranking.json": json.loads(ranking.read_text()),
        "ranking.html": page, "photo_dir": photo_dir, "pixels": pixels, "ids": ids,
    }


def test_every_photo_is_evaluated_and_the_network_tells_them_apart(parity):
    assert len(parity["evaluation"]) == len(_photos())
    assert np.std(list(parity["evaluation"].values())) > 0.3


def test_the_evaluations_metrics_are_those_of_its_predictions(parity):
    """metrics.json against scipy on predictions.csv, the rows a user analyses."""
    rows, metrics = parity["predictions.csv"], parity["metrics.json"]["model"]
    assert metrics["num_images"] == len(rows) == len(_photos())
    assert metrics["srcc_mean"] == pytest.approx(stats.spearmanr(rows["true_mean"], rows["predicted_mean"]).statistic, abs=1e-6)
    assert metrics["lcc_mean"] == pytest.approx(stats.pearsonr(rows["true_mean"], rows["predicted_mean"]).statistic, abs=1e-5)
    assert metrics["srcc_std"] == pytest.approx(stats.spearmanr(rows["true_std"], rows["predicted_std"]).statistic, abs=1e-6)


def test_predict_scores_every_photo_as_the_evaluation_does(parity):
    assert parity["predict"].keys() == parity["evaluation"].keys()
    differences = {name: abs(parity["predict"][name] - score) for name, score in parity["evaluation"].items()}
    assert max(differences.values()) <= SAME_PIXELS, differences
    former = {name: abs(parity["straight_squash"][name] - score) for name, score in parity["evaluation"].items()}
    assert max(former.values()) > 10 * SAME_PIXELS, "the photos must be ones a path that skips the stored JPEG gets wrong"


def test_the_bytes_signature_scores_plain_photos_as_the_evaluation_does(parity):
    for name, score in parity["bytes"].items():
        allowed = CONVERTED_BY_TENSORFLOW.get(_kind(name), SAME_PIXELS)
        assert abs(score - parity["evaluation"][name]) <= allowed, (name, score, parity["evaluation"][name])


def test_the_float32_tflite_model_scores_every_photo_as_the_evaluation_does(parity):
    """The quantised kinds' differences depend on the network (its weights' rounding): they
    are printed here, and held to their tolerance of the SavedModel in test_serving.py."""
    differences = [abs(parity["tflite_float32"][name] - score) for name, score in parity["evaluation"].items()]
    assert max(differences) <= export.TFLITE_MEAN_TOLERANCE["float32"], differences


def test_every_unquantised_path_ranks_the_photos_alike(parity):
    """Over the photos each path takes as the build does: every one, but the kinds the
    bytes signature cannot replay for it."""
    paths = ["evaluation", "predict", "bytes", "tflite_float32"]
    for first in paths:
        for second in paths:
            common = sorted(n for n in parity[first].keys() & parity[second].keys() if _kind(n) not in CONVERTED_BY_TENSORFLOW)
            correlation = stats.spearmanr([parity[first][n] for n in common], [parity[second][n] for n in common]).statistic
            assert correlation >= 0.999, (first, second, correlation)


# The pages show these very scores: predict's ranking and the evaluation's report.


def test_the_ranking_page_shows_predicts_scores_on_thumbnails_of_the_pixels_it_scored(parity):
    page = parity["ranking.html"]
    tree = html_tree.parse(page)
    cards = tree.find("ol", id="photos").find_all("li", class_="card")
    ranking = parity["ranking.json"]
    assert [card.attrs["data-name"] for card in cards] == [score["path"] for score in ranking]
    for card, score in zip(cards, ranking):
        assert float(card.attrs["data-mean"]) == score["mean"]  # the JSON's float, to the last digit
        assert card.find(class_="score").text == f"{score['mean']:.2f}"
        assert card.find(class_="path").text == pathlib.Path(score["path"]).name  # under the folder the page names
        bars = [float(bar.attrs["style"].removeprefix("height:").removesuffix("%")) for bar in card.find(class_="hist").find_all("i")]
        assert bars == pytest.approx(100 * np.asarray(score["distribution"]) / max(score["distribution"]), abs=0.5)
        # Upright and sRGB: the EXIF-rotated, CMYK, Adobe RGB and 16-bit photos as the model saw them.
        thumbnail = page.parent / card.find("img").attrs["src"]
        name = pathlib.Path(score["path"]).name
        assert thumbnail.read_bytes() == pages.thumbnail(parity["pixels"][name]), name
    assert str(parity["photo_dir"]) in tree.find("p", class_="muted").text
    assert not tree.find_all(id="failures") and not tree.find_all(id="not-images")
    assert all(path.is_file() for path in html_tree.referenced_files(page, tree))


def test_the_evaluation_page_shows_metrics_json_and_the_photos_of_predictions_csv(parity):
    page = parity["eval_dir"] / evaluate.REPORT_PAGE
    tree = html_tree.parse(page)
    metrics = parity["metrics.json"]
    for kind in ("model", "baseline"):
        (row,) = tree.find_all("tr", class_=kind)
        for cell in row.find_all("td"):
            if "data-metric" in cell.attrs:
                value = metrics[kind].get(cell.attrs["data-metric"])
                expected = "–" if value is None else str(value) if isinstance(value, int) else f"{value:.4f}"
                assert cell.text == expected, (kind, cell.attrs["data-metric"])
    published = [row.find("td").text for row in tree.find_all("tr", class_="published")]
    assert published == [entry["name"] for entry in evaluate.PUBLISHED]
    rows = parity["predictions.csv"].reset_index()
    error = (rows["predicted_mean"] - rows["true_mean"]).abs()
    expected_sections = [
        list(rows.sort_values("predicted_mean", ascending=False, kind="stable")["image_id"][: evaluate.PAGE_PHOTOS]),
        list(rows.sort_values("predicted_mean", kind="stable")["image_id"][: evaluate.PAGE_PHOTOS]),
        list(rows.loc[error.sort_values(ascending=False, kind="stable").index, "image_id"][: evaluate.PAGE_PHOTOS]),
    ]
    sections = [grid.find_all("li", class_="card") for grid in tree.find_all("ol", class_="grid")]
    assert [[int(card.attrs["data-image-id"]) for card in cards] for cards in sections] == expected_sections
    by_id = rows.set_index("image_id")
    for card in sections[2]:
        row = by_id.loc[int(card.attrs["data-image-id"])]
        assert card.find(class_="score").text == f"{row['predicted_mean']:.2f}"
        assert f"true {row['true_mean']:.2f}, error {row['predicted_mean'] - row['true_mean']:+.2f}" in card.text
        bars = card.find(class_="hist").find_all("i")
        assert len(bars) == 20  # the votes' and the model's, side by side
    files = html_tree.referenced_files(page, tree)
    assert {f.name for f in files} >= {"scatter.png", "metrics.json", "predictions.csv"}
    assert all(path.is_file() for path in files), [p for p in files if not p.is_file()]


def test_the_comparison_page_shows_each_run_and_links_its_report(parity, tmp_path):
    result = parity["metrics.json"]
    other = {**result, "run": {**result["run"], "workdir": str(tmp_path / "other")}}
    (tmp_path / "other" / evaluate.EVAL_DIR).mkdir(parents=True)
    (tmp_path / "other" / evaluate.EVAL_DIR / evaluate.REPORT_PAGE).write_text("<!doctype html><title>other</title>")
    evaluate.write_comparison_page(str(parity["eval_dir"]), [result, other])
    page = parity["eval_dir"] / evaluate.COMPARISON_PAGE
    tree = html_tree.parse(page)
    assert len(tree.find_all("tr", class_="model")) == 2 and len(tree.find_all("tr", class_="baseline")) == 1
    links = html_tree.referenced_files(page, tree)
    assert [link.resolve() for link in links] == [
        (parity["eval_dir"] / evaluate.REPORT_PAGE).resolve(), (tmp_path / "other" / evaluate.EVAL_DIR / evaluate.REPORT_PAGE).resolve()
    ]


def test_the_commands_keep_tensorflows_info_lines_off(parity):
    """trainer.evaluate's terminal: its own lines, no INFO line of TensorFlow or absl."""
    stderr = parity["evaluate_stderr"]
    assert not re.search(r"^I\d{4} ", stderr, re.MULTILINE), stderr[-3000:]
    assert "Load dataset info" not in stderr and "oneDNN" not in stderr


@pytest.mark.parametrize("whole", [False, True], ids=["square-on-sample", "whole-on-full"])
def test_predicts_pixels_are_the_evaluations_bit_for_bit(whole, request):
    """For the photos of a built test split: the original file through predict's path, and
    the dataset's record through the evaluation's input pipeline (`tfds` reading the built
    shards), give the same pixels."""
    if whole:
        config, originals = request.getfixturevalue("spp_demo_config"), request.getfixturevalue("framed_ava_dir") / ava_index.IMAGES_DIR
    else:
        config = request.getfixturevalue("demo_config")
        originals = pathlib.Path(ava_dataset_builder.sample_images_dir(config.dataset.data_dir, "sample"))
    contract = input_pipeline.input_contract(config)
    assert (contract.whole_image is not None, contract.stored_size) == (whole, None if whole else images.STORED_SIZE)
    compared = 0
    for batch in input_pipeline.eval_dataset(config, "test", batch_size=16).take(3):
        for image_id, pixels in zip(batch[features.IMAGE_ID].numpy(), batch[input_pipeline.PIXELS].numpy()):
            prepared = predict.prepare(str(originals / f"{image_id}.jpg"), contract)
            np.testing.assert_array_equal(prepared, pixels, err_msg=str(image_id))
            compared += 1
    assert compared >= 16


def _ava_layout(root: pathlib.Path, photos: dict[str, bytes], ids: dict[str, int]) -> pathlib.Path:
    """AVA's own layout: every parity photo on the test list, a few plain photos to train on."""
    (root / ava_index.IMAGES_DIR).mkdir(parents=True)
    (root / ava_index.TEST_LIST_FILE).parent.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    train = {f"train-{index}": _encode(image_zoo.textured(320, 240, 100 + index), "JPEG", quality=90) for index in range(6)}
    for index, (name, data) in enumerate({**photos, **train}.items()):
        image_id = ids.get(name, 600_001 + index)
        (root / ava_index.IMAGES_DIR / f"{image_id}.jpg").write_bytes(data)
        rows.append(" ".join(map(str, [index + 1, image_id, *rng.integers(1, 40, 10), 1, 2, 7])))
    (root / ava_index.AVA_INDEX_FILE).write_text("\n".join(rows) + "\n")
    (root / ava_index.TAGS_FILE).write_text("1 Abstract\n2 Animals\n")
    (root / ava_index.TEST_LIST_FILE).write_text("\n".join(str(ids[name]) for name in photos) + "\n")
    return root


def _random_run(workdir: pathlib.Path, photos: dict[str, bytes]) -> str:
    """A run directory as trainer.main leaves it, whose best checkpoint is a small MobileNet
    with random weights under a head fitted to spread these very photos: it tells them apart
    by their detail, as a trained network does. The config points at no dataset, so that
    evaluation must be told where the build is (`--config.dataset.data_dir`)."""
    config = demo.get_config()
    config.dataset.name = "ava/256"
    config.dataset.data_dir = str(workdir / "no-dataset-here")
    config.input.image_size = SIZE
    config.model.batchnorm_momentum = 0.01
    config.train.eval_batch_size = 7
    keras.utils.set_random_seed(0)
    model, _ = models.build_model(config.model, SIZE)
    contract = model_input.InputContract(image_size=SIZE)
    pixels = np.stack([contract.from_photo(data) for data in photos.values()]).astype(np.float32)
    model(pixels, training=True)  # batch statistics from the photos
    # A head whose logits spread about one unit over the photos, as training would make
    # them: the mean scores spread over points, not hundredths.
    head = heads.of(model)
    pooled = keras.Model(model.inputs, head.input).predict(pixels, verbose=0)
    centred = pooled - pooled.mean(axis=0)
    weights = np.random.default_rng(0).normal(0, 1, head.dense.kernel.shape)
    weights /= np.std(centred @ weights)
    head.dense.kernel.assign(weights)
    head.dense.bias.assign(-pooled.mean(axis=0) @ weights)
    workdir.mkdir(parents=True)
    run_dir.save_config(str(workdir), config)
    tf.train.Checkpoint(model=model).save(os.path.join(workdir, loop.BEST_DIR, "ckpt"))
    return str(workdir)


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _print_table(scores: dict) -> None:
    reference = scores["evaluation"]
    print("\nmean |diff| and max |diff| of the mean score against the evaluation, per path and kind of photo")
    for path in (p for p in scores if p != "evaluation"):
        kinds: dict[str, list[float]] = {}
        for name, score in scores[path].items():
            kinds.setdefault(_kind(name), []).append(abs(score - reference[name]))
        cells = ", ".join(f"{kind} {np.mean(d):.1e}/{max(d):.1e}" for kind, d in sorted(kinds.items()))
        every = [d for ds in kinds.values() for d in ds]
        print(f"{path:>22}: all {np.mean(every):.1e}/{max(every):.1e} ({len(every)} photos); {cells}")
    print(f"spread of the evaluation's scores: sd {np.std(list(reference.values())):.3f}")
    for path in (p for p in scores if p != "evaluation"):
        common = sorted(scores[path])
        correlation = stats.spearmanr([reference[n] for n in common], [scores[path][n] for n in common]).statistic
        print(f"Spearman of {path} with the evaluation: {correlation:.4f} ({len(common)} photos)")
