"""Evaluates a run on the official test list: `python -m trainer.evaluate --workdir=DIR [--split=test]`.

The run's best checkpoint scores every photo of the split as `trainer.model_input` defines
a photo's score, which every serving path reproduces. Any value of the run's config can
be overridden as in training: `--config.dataset.data_dir=DIR` scores another build of
`ava` (photos of your own built with `beam_pipelines.build`, say).

Writes under DIR/eval/: `predictions.csv` (one row per photo: its id, the true mean, std
and vote distribution, and what the model's head predicts), `metrics.json` (the model's
figures, the baseline's, and the published AVA results), `report.md` (the same as a
table, also printed), and figures:
predicted against true mean score, the two distributions of mean scores with the tails
enlarged, error by true-score bucket, the training curves, and the best and worst scored
images.

`--compare=B,C` also evaluates the runs B and C (each into its own eval/) and prints one
table of all of them, written to DIR/eval/comparison.md: each run's figures (those its
head allows: EMD for a distribution, MAE for a predicted mean score, log loss for a
probability), the baseline of each dataset they were scored on, the published AVA
results, and each split's class balance, which the classification figures need.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from ava_core import ratings
from ava_tfds.ava import features
from configs import nima_mobilenet
from trainer import heads, input_pipeline, metrics, model_input, plots, predictions, run_dir

EVAL_DIR = "eval"
REPORT_FILE, COMPARISON_FILE = "report.md", "comparison.md"
PREDICTIONS_FILE = "predictions.csv"
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
    with tf.io.gfile.GFile(os.path.join(out, PREDICTIONS_FILE), "w") as file:
        predictions_table(scored).to_csv(file, index=False, float_format="%.7g")
    with tf.io.gfile.GFile(os.path.join(out, run_dir.METRICS_FILE), "w") as file:
        json.dump(result, file, indent=2)
    with tf.io.gfile.GFile(os.path.join(out, REPORT_FILE), "w") as file:
        file.write(report_table(result))
    _write_figures(out, scored, config, workdir, split)
    return result


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
    header = "| model | " + " | ".join(_COLUMNS) + " | confusion [[TN FP] [FN TP]] |\n|" + " --- |" * (len(_COLUMNS) + 2) + "\n"
    rows, baselines = [], {}
    for result in results:
        run = result["run"]
        rows.append((
            f"{os.path.basename(os.path.normpath(run['workdir']))}: {run['head']} head, {run['pooling']} pooling, "
            f"{'whole photo' if run['keep_aspect_ratio'] else 'square'} ({os.path.basename(str(result['checkpoint']))})",
            result["model"],
        ))
        baselines.setdefault((run["dataset"], result["split"]), result["baseline"])
    several = len(baselines) > 1
    for (dataset, split), baseline in baselines.items():
        rows.append(("baseline: training mean distribution" + (f" ({dataset})" if several else ""), baseline))
    rows += [(entry["name"], entry) for entry in results[0]["published"]]
    lines = [f"| {name} | " + " | ".join(_format(values.get(column)) for column in _COLUMNS) + f" | {_confusion(values)} |"
             for name, values in rows]
    balance = [
        f"{dataset} {split} split: {baseline['positive_share']:.0%} of {baseline['num_images']} photos are beautiful "
        f"(mean score > 5); calling every photo beautiful scores that accuracy and precision, with recall 1."
        for (dataset, split), baseline in baselines.items()
    ]
    unscored = [
        f"{os.path.basename(os.path.normpath(result['run']['workdir']))}: {result['unscored']['count']} photos of the "
        f"{result['split']} split could not be decoded and are in none of these figures (ids "
        f"{', '.join(map(str, result['unscored']['image_ids']))})."
        for result in results if result["unscored"]["count"]
    ]
    splits = sorted({result["split"] for result in results})
    return (f"Evaluation on the {', '.join(splits)} split\n\n" + header + "\n".join(lines) + "\n\n"
            + "\n".join(balance + unscored) + "\n")


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
        print(f"comparison: {os.path.join(out, COMPARISON_FILE)}; each run's report, metrics and figures: its {EVAL_DIR}/")
    else:
        print(f"report, metrics and figures: {out}")


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


def _write_figures(out: str, scored: predictions.Predictions, config, workdir: str, split: str) -> None:
    true_mean = metrics.mean_score(scored.true_distribution)
    predicted_mean = scored.predicted_mean
    figures = {
        "scatter.png": plots.scatter(true_mean, predicted_mean),
        "mean_distributions.png": plots.mean_distributions(true_mean, predicted_mean),
        "error_by_bucket.png": plots.error_by_bucket(true_mean, predicted_mean),
        "best_and_worst.png": plots.best_and_worst(
            _images_by_id(config, split, _extremes(scored.image_ids, predicted_mean)),
            scored.image_ids,
            true_mean,
            predicted_mean,
        ),
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
    app.run(main)
