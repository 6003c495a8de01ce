"""Evaluates a run on the official test list: `python -m trainer.evaluate --workdir=DIR [--split=test]`.

The run's best checkpoint scores every photo of the split as `trainer.model_input` defines
a photo's score, which every serving path reproduces. Any value of the run's config can
be overridden as in training: `--config.dataset.data_dir=DIR` scores another build of
`ava` (photos of your own built with `beam_pipelines.build`, say).

Writes under DIR/eval/: `predictions.csv` (one row per photo: its id, the true mean, std
and vote distribution, and what the model's head predicts), `metrics.json` (the model's
figures, the baseline's, and the published AVA results), `report.md` (the same as a
table, also printed), figures (predicted against true mean score, the two distributions
of mean scores with the tails enlarged, error by true-score bucket, the training curves,
the best and worst scored images), and `report.html`, all of it as one page to look at:
the table, the figures, and the best and worst scored photos and the largest errors as
thumbnails (eval/thumbnails/) with their true and predicted vote histograms.

`--compare=B,C` also evaluates the runs B and C (each into its own eval/) and prints one
table of all of them, written to DIR/eval/comparison.md and as a page, comparison.html,
that links each run's report.html: each run's figures (those its
head allows: EMD for a distribution, MAE for a predicted mean score, log loss for a
probability), the baseline of each dataset they were scored on, the published AVA
results, and each split's class balance, which the classification figures need.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Sequence

from ava_core import terminal

if __name__ == "__main__":
    terminal.quiet_tensorflow()  # before TensorFlow loads

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ava_core import pages, ratings  # noqa: E402
from ava_tfds.ava import features  # noqa: E402
from configs import nima_mobilenet  # noqa: E402
from trainer import heads, input_pipeline, metrics, model_input, plots, predictions, run_dir  # noqa: E402

EVAL_DIR = "eval"
REPORT_FILE, COMPARISON_FILE = "report.md", "comparison.md"
REPORT_PAGE, COMPARISON_PAGE = "report.html", "comparison.html"
PREDICTIONS_FILE = "predictions.csv"
THUMBNAILS_DIR = "thumbnails"  # in eval/: the report page's photos
PAGE_PHOTOS = 8  # photos in each of the report page's sections: best, worst, largest errors
# The figures the report page shows, with their captions (the best and worst photos it shows itself).
_PAGE_FIGURES = {
    "scatter.png": "Predicted against true mean score, one dot a photo.",
    "mean_distributions.png": "The distributions of the true and predicted mean scores, the tails enlarged.",
    "error_by_bucket.png": "Mean absolute error of the mean score by true score (the tails in red).",
    "training_curves.png": "The training loss and the validation figures at each epoch.",
}
# Published results on the official AVA test list, as the project report tabulates them.
PUBLISHED = [
    {"name": "Murray et al. 2012", "accuracy": 0.6800},
    {"name": "Kong et al. 2016 (Reg)", "accuracy": 0.7204},
    {"name": "Lu et al. 2014 (DCNN)", "accuracy": 0.7325},
    {"name": "Lu et al. 2015 (DMA)", "accuracy": 0.7446},
    {"name": "Schwarz et al. 2018", "accuracy": 0.7583},
    {"name": "NIMA MobileNet (Talebi & Milanfar 2018)", "accuracy": 0.8036, "emd": 0.081, "lcc_mean": 0.518, "srcc_mean": 0.510},
    {"name": "NIMA Inception-v2 (Talebi & Milanfar 2018)", "accuracy": 0.8151, "emd": 0.050, "lcc_mean": 0.638, "srcc_mean": 0.612},
]
_COLUMNS = (
    "num_images", "accuracy", "emd", "lcc_mean", "srcc_mean", "lcc_std", "srcc_std", "mae_mean", "rmse_mean",
    "precision", "recall", "roc_auc", "log_loss",
)
_CONFUSION = ("true_negatives", "false_positives", "false_negatives", "true_positives")

FLAGS = flags.FLAGS


def evaluate_run(workdir: str, split: str = "test", overrides: dict | None = None) -> dict:
    """Scores the run's best checkpoint on `split`, writes the per-photo predictions, the
    report and figures, returns the metrics. `overrides`: config values by dotted path
    ({"dataset.data_dir": DIR}) that replace the run's own."""
    config = run_dir.load_config(workdir)
    config.update_from_flattened_dict(dict(overrides or {}))
    model, checkpoint = run_dir.restore_model(workdir, config)
    scored, comparison = predictions.compare_with_baseline(model, config, split)
    result = {
        "split": split,
        "checkpoint": checkpoint,
        "run": {
            "workdir": workdir,
            "dataset": config.dataset.name,
            "head": config.model.head,
            "pooling": config.model.pooling,
            "keep_aspect_ratio": config.input.keep_aspect_ratio,
        },
        **comparison,
        # The figures cover model.num_images photos; these could not be decoded.
        "unscored": {"count": len(scored.unscored_ids), "image_ids": list(scored.unscored_ids)},
        "published": PUBLISHED,
    }
    out = os.path.join(workdir, EVAL_DIR)
    tf.io.gfile.makedirs(out)
    table = predictions_table(scored)
    with tf.io.gfile.GFile(os.path.join(out, PREDICTIONS_FILE), "w") as file:
        table.to_csv(file, index=False, float_format="%.7g")
    with tf.io.gfile.GFile(os.path.join(out, run_dir.METRICS_FILE), "w") as file:
        json.dump(result, file, indent=2)
    with tf.io.gfile.GFile(os.path.join(out, REPORT_FILE), "w") as file:
        file.write(report_table(result))
    sections = _photo_sections(table)
    wanted = {int(i) for _, photos in sections for i in photos["image_id"]}
    images = _images_by_id(config, split, wanted | _extremes(scored.image_ids, scored.predicted_mean))
    figures = _write_figures(out, scored, config, workdir, images)
    _write_report_page(out, result, sections, images, figures)
    return result


def _photo_sections(table: pd.DataFrame, count: int = PAGE_PHOTOS) -> list[tuple[str, pd.DataFrame]]:
    """The report page's photos: (title, their rows of `predictions_table`)."""
    error = (table["predicted_mean"] - table["true_mean"]).abs()
    return [
        (f"The {count} best scored photos", table.nlargest(count, "predicted_mean")),
        (f"The {count} worst scored photos", table.nsmallest(count, "predicted_mean")),
        (f"The {count} largest errors of the mean score", table.loc[error.nlargest(count).index]),
    ]


def predictions_table(scored: predictions.Predictions) -> pd.DataFrame:
    """One row per photo: image_id; true_mean, true_std, true_p1..p10; then the head's
    outputs (predicted_mean always; predicted_std and predicted_p1..p10 from a
    distribution head, predicted_probability_beautiful from a binary one)."""
    true_mean = metrics.mean_score(scored.true_distribution)
    columns = {
        "image_id": scored.image_ids.astype(np.int64),
        "true_mean": true_mean,
        "true_std": metrics.std_score(scored.true_distribution),
        **{f"true_p{score:.0f}": scored.true_distribution[:, k] for k, score in enumerate(ratings.SCORES)},
    }
    for name, values in scored.outputs.items():
        if values.ndim == 2:
            columns.update({f"predicted_p{score:.0f}": values[:, k] for k, score in enumerate(ratings.SCORES)})
        else:
            columns[f"predicted_{name}"] = values
    return pd.DataFrame(columns)


def report_table(*results: dict) -> str:
    """A Markdown table: each run, the constant baseline of each dataset they were scored
    on, the published results; then the class balance of each of those splits."""
    rows, notes = _report_rows(results)
    header = "| model | " + " | ".join(_COLUMNS) + " | confusion [[TN FP] [FN TP]] |\n|" + " --- |" * (len(_COLUMNS) + 2) + "\n"
    lines = [f"| {row['name']} | " + " | ".join(row["cells"][column] for column in _COLUMNS) + f" | {row['confusion']} |"
             for row in rows]
    return f"{_title(results)}\n\n" + header + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def _report_rows(results: Sequence[dict]) -> tuple[list[dict], list[str]]:
    """The table's rows (name, kind, each column's formatted value, confusion) and the
    sentences under it, shared by the Markdown and the HTML report."""
    rows, baselines = [], {}
    for result in results:
        run = result["run"]
        rows.append((
            f"{_run_name(result)}: {run['head']} head, {run['pooling']} pooling, "
            f"{'whole photo' if run['keep_aspect_ratio'] else 'square'} ({os.path.basename(str(result['checkpoint']))})",
            "model",
            result["model"],
        ))
        baselines.setdefault((run["dataset"], result["split"]), result["baseline"])
    several = len(baselines) > 1
    for (dataset, split), baseline in baselines.items():
        rows.append(("baseline: training mean distribution" + (f" ({dataset})" if several else ""), "baseline", baseline))
    rows += [(entry["name"], "published", entry) for entry in results[0]["published"]]
    balance = [
        f"{dataset} {split} split: {baseline['positive_share']:.0%} of {baseline['num_images']} photos are beautiful "
        f"(mean score > 5); calling every photo beautiful scores that accuracy and precision, with recall 1."
        for (dataset, split), baseline in baselines.items()
    ]
    unscored = [
        f"{_run_name(result)}: {result['unscored']['count']} photos of the "
        f"{result['split']} split could not be decoded and are in none of these figures (ids "
        f"{', '.join(map(str, result['unscored']['image_ids']))})."
        for result in results if result["unscored"]["count"]
    ]
    table = [
        {"name": name, "kind": kind, "cells": {column: _format(values.get(column)) for column in _COLUMNS},
         "confusion": _confusion(values)}
        for name, kind, values in rows
    ]
    return table, balance + unscored


def _run_name(result: dict) -> str:
    return os.path.basename(os.path.normpath(result["run"]["workdir"]))


def _title(results: Sequence[dict]) -> str:
    return f"Evaluation on the {', '.join(sorted({result['split'] for result in results}))} split"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    workdirs = [FLAGS.workdir] + [workdir for workdir in FLAGS.compare if workdir]
    overrides = config_flags.get_override_values(FLAGS["config"])
    results = [evaluate_run(workdir, FLAGS.split, overrides) for workdir in workdirs]
    table = report_table(*results)
    print(table)
    out = os.path.join(FLAGS.workdir, EVAL_DIR)
    if len(results) > 1:
        with tf.io.gfile.GFile(os.path.join(out, COMPARISON_FILE), "w") as file:
            file.write(table)
        write_comparison_page(out, results)
        print(f"comparison: {os.path.join(out, COMPARISON_PAGE)} ({COMPARISON_FILE}); each run's report, metrics and figures: its {EVAL_DIR}/")
    else:
        print(f"report: {os.path.join(out, REPORT_PAGE)}; metrics, predictions and figures beside it")


def write_comparison_page(out: str, results: Sequence[dict]) -> None:
    rows, notes = _report_rows(results)
    runs = [
        {"name": _run_name(result), "report": urllib.parse.quote(os.path.relpath(os.path.join(result["run"]["workdir"], EVAL_DIR, REPORT_PAGE), out))}
        for result in results
    ]
    with tf.io.gfile.GFile(os.path.join(out, COMPARISON_PAGE), "w") as file:
        pages.write_page(file, "comparison.html.j2", title=f"Comparison: {_title(results).lower()}",
                         columns=_COLUMNS, rows=rows, notes=notes, runs=runs)


def _format(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _confusion(values: dict) -> str:
    if _CONFUSION[0] not in values:
        return "–"
    tn, fp, fn, tp = (values[name] for name in _CONFUSION)
    return f"[[{tn} {fp}] [{fn} {tp}]]"


def _write_figures(out: str, scored: predictions.Predictions, config, workdir: str, images: dict[int, np.ndarray]) -> list[str]:
    """Writes the figures; returns the names of those written."""
    true_mean = metrics.mean_score(scored.true_distribution)
    predicted_mean = scored.predicted_mean
    figures = {
        "scatter.png": plots.scatter(true_mean, predicted_mean),
        "mean_distributions.png": plots.mean_distributions(true_mean, predicted_mean),
        "error_by_bucket.png": plots.error_by_bucket(true_mean, predicted_mean),
        "best_and_worst.png": plots.best_and_worst(images, scored.image_ids, true_mean, predicted_mean),
    }
    history_path = os.path.join(workdir, run_dir.HISTORY_FILE)
    if tf.io.gfile.exists(history_path):
        with tf.io.gfile.GFile(history_path) as file:
            figures["training_curves.png"] = plots.training_curves(
                pd.read_csv(file), heads.HEADS[config.model.head].best_metric
            )
    for name, png in figures.items():
        with tf.io.gfile.GFile(os.path.join(out, name), "wb") as file:
            file.write(png)
    return list(figures)


def _write_report_page(
    out: str, result: dict, sections: list[tuple[str, pd.DataFrame]], images: dict[int, np.ndarray], figures: list[str]
) -> None:
    """eval/report.html: the report's table, the figures, and the photos of `sections`
    with their true and predicted vote histograms (thumbnails in eval/thumbnails/)."""
    tf.io.gfile.makedirs(os.path.join(out, THUMBNAILS_DIR))
    photo_pages = []
    for title, photos in sections:
        cards = []
        for row in photos.to_dict("records"):
            image_id = int(row["image_id"])
            thumbnail = f"{THUMBNAILS_DIR}/{image_id}{pages.THUMBNAIL_SUFFIX}"
            with tf.io.gfile.GFile(os.path.join(out, thumbnail), "wb") as file:
                file.write(pages.thumbnail(images[image_id]))
            cards.append({
                "image_id": image_id,
                "thumbnail": thumbnail,
                "predicted_mean": row["predicted_mean"],
                "true_mean": row["true_mean"],
                "true_distribution": _bins(row, "true_p"),
                "predicted_distribution": _bins(row, "predicted_p"),
                "probability_beautiful": row.get("predicted_probability_beautiful"),
            })
        photo_pages.append({"title": title, "photos": cards})
    rows, notes = _report_rows([result])
    with tf.io.gfile.GFile(os.path.join(out, REPORT_PAGE), "w") as file:
        pages.write_page(
            file, "evaluation.html.j2",
            title=f"{_run_name(result)}: {_title([result]).lower()}",
            checkpoint=result["checkpoint"], split=result["split"], dataset=result["run"]["dataset"],
            metrics_file=run_dir.METRICS_FILE, predictions_file=PREDICTIONS_FILE,
            columns=_COLUMNS, rows=rows, notes=notes,
            figures=[{"src": name, "caption": caption} for name, caption in _PAGE_FIGURES.items() if name in figures],
            photo_sections=photo_pages,
        )


def _bins(row: dict, prefix: str) -> list[float] | None:
    """The 10 vote shares of a predictions row under `prefix` (true_p, predicted_p), or None."""
    names = [f"{prefix}{score:.0f}" for score in ratings.SCORES]
    return [float(row[name]) for name in names] if names[0] in row else None


def _extremes(image_ids: np.ndarray, predicted_mean: np.ndarray, count: int = plots.GRID_SIDE) -> set[int]:
    order = np.argsort(predicted_mean)
    return {int(image_ids[i]) for i in np.concatenate([order[:count], order[-count:]])}


def _images_by_id(config, split: str, wanted: set[int]) -> dict[int, np.ndarray]:
    images = {}
    for record in input_pipeline.eval_records(config, split).as_numpy_iterator():
        image_id = int(record[features.IMAGE_ID])
        if image_id in wanted:
            images[image_id] = model_input.decode_stored(record[features.IMAGE]).numpy()
    return images


def _define_flags() -> None:
    """Flags exist only when this module is the program, so importing it clashes with nothing."""
    flags.DEFINE_string("workdir", None, "The trainer.main --workdir to evaluate.", required=True)
    flags.DEFINE_string("split", "test", "Split of the dataset to evaluate on (test is the official list).")
    config_flags.DEFINE_config_dict(
        "config",
        nima_mobilenet.get_config(),
        "Only its overrides count: --config.a.b=V replaces a value of each evaluated run's own config.json "
        "(--config.dataset.data_dir=DIR scores another build of ava); the values listed are not used.",
    )
    flags.DEFINE_list("compare", [], "Other runs' --workdir to evaluate and report beside this one (comma-separated).")


if __name__ == "__main__":
    _define_flags()
    terminal.run(main)
