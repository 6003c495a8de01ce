"""The evaluation's figures, each returned as PNG bytes (so they can be written to gs:// too)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from ava_core import ratings  # noqa: E402

GRID_SIDE = 4  # best and worst images shown: one row each
# The project report: the model is weak below 3.5 and above 7.5, where AVA has few photos.
LOW_TAIL, HIGH_TAIL = 3.5, 7.5


def scatter(true_mean: np.ndarray, predicted_mean: np.ndarray) -> bytes:
    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    axis.scatter(true_mean, predicted_mean, s=6, alpha=0.4)
    axis.plot([ratings.MIN_SCORE, ratings.MAX_SCORE], [ratings.MIN_SCORE, ratings.MAX_SCORE], "k--", lw=1, label="identity")
    low = min(true_mean.min(), predicted_mean.min()) - 0.2
    high = max(true_mean.max(), predicted_mean.max()) + 0.2
    axis.set(xlim=(low, high), ylim=(low, high), xlabel="true mean score", ylabel="predicted mean score",
             title=f"Predicted against true mean score ({len(true_mean)} images)")
    axis.legend()
    return _png(figure)


def mean_distributions(true_mean: np.ndarray, predicted_mean: np.ndarray) -> bytes:
    """Both distributions overlaid, with the two tails enlarged below, as the report shows them."""
    figure = plt.figure(figsize=(10, 7))
    grid = figure.add_gridspec(2, 2, height_ratios=[2, 1])
    bins = np.linspace(ratings.MIN_SCORE, ratings.MAX_SCORE, 73)
    panels = [
        (figure.add_subplot(grid[0, :]), (ratings.MIN_SCORE, ratings.MAX_SCORE), "all images"),
        (figure.add_subplot(grid[1, 0]), (ratings.MIN_SCORE, LOW_TAIL), f"low tail (< {LOW_TAIL}), enlarged"),
        (figure.add_subplot(grid[1, 1]), (HIGH_TAIL, ratings.MAX_SCORE), f"high tail (> {HIGH_TAIL}), enlarged"),
    ]
    for axis, (low, high), title in panels:
        axis.hist(true_mean, bins=bins, alpha=0.5, label="true")
        axis.hist(predicted_mean, bins=bins, alpha=0.5, label="predicted")
        visible = [
            np.histogram(values[(values >= low) & (values <= high)], bins=bins)[0].max(initial=0)
            for values in (true_mean, predicted_mean)
        ]
        axis.set(xlim=(low, high), ylim=(0, max(visible) * 1.1 + 1), title=title, xlabel="mean score", ylabel="images")
        axis.legend()
    figure.suptitle("Distribution of mean scores")
    return _png(figure)


def error_by_bucket(true_mean: np.ndarray, predicted_mean: np.ndarray) -> bytes:
    """Mean absolute error per one-point bucket of the true score, with the image count of each."""
    edges = np.arange(ratings.MIN_SCORE, ratings.MAX_SCORE + 1)
    bucket = np.clip(np.digitize(true_mean, edges) - 1, 0, len(edges) - 2)
    errors = np.abs(predicted_mean - true_mean)
    labels, maes, counts = [], [], []
    for index in range(len(edges) - 1):
        mask = bucket == index
        labels.append(f"{edges[index]}-{edges[index + 1]}")
        maes.append(errors[mask].mean() if mask.any() else 0.0)
        counts.append(int(mask.sum()))
    figure, axis = plt.subplots(figsize=(9, 4.5))
    colours = ["tab:red" if e[0] < LOW_TAIL or e[1] > HIGH_TAIL else "tab:blue" for e in zip(edges[:-1], edges[1:])]
    bars = axis.bar(labels, maes, color=colours)
    for bar, count in zip(bars, counts):
        axis.annotate(f"n={count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axis.set(xlabel="true mean score", ylabel="mean absolute error of the mean score",
             title=f"Error by true score (red: the tails below {LOW_TAIL} and above {HIGH_TAIL})")
    return _png(figure)


def training_curves(history: pd.DataFrame, validation_loss: str) -> bytes:
    """The training loss and the validation metric `validation_loss` (the head's), the ranking figures beside."""
    figure, (loss_axis, rank_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(history["global_step"], history["train_loss"], "o-", label="training loss")
    loss_axis.plot(history["global_step"], history[f"val_{validation_loss}"], "o-", label=f"validation {validation_loss}")
    rank_axis.plot(history["global_step"], history["val_srcc_mean"], "o-", label="validation SRCC")
    rank_axis.plot(history["global_step"], history["val_lcc_mean"], "o-", label="validation LCC")
    rank_axis.plot(history["global_step"], history["val_accuracy"], "o-", label="validation accuracy")
    for phase_start in history.groupby("phase", sort=False)["global_step"].min().iloc[1:]:
        for axis in (loss_axis, rank_axis):
            axis.axvline(phase_start, color="grey", ls=":", lw=1)
    loss_axis.set(xlabel="step", title="Loss")
    rank_axis.set(xlabel="step", title="Validation")
    for axis in (loss_axis, rank_axis):
        axis.legend()
    return _png(figure)


def best_and_worst(
    images: dict[int, np.ndarray], image_ids: np.ndarray, true_mean: np.ndarray, predicted_mean: np.ndarray
) -> bytes:
    """The GRID_SIDE best and worst scored images, captioned with predicted and true mean."""
    order = np.argsort(-predicted_mean)
    rows = [("best", order[:GRID_SIDE]), ("worst", order[::-1][:GRID_SIDE])]
    figure, axes = plt.subplots(2, GRID_SIDE, figsize=(3 * GRID_SIDE, 6.6), squeeze=False)
    for row, (name, indices) in enumerate(rows):
        for column in range(GRID_SIDE):
            axis = axes[row][column]
            axis.axis("off")
            if column >= len(indices):
                continue
            index = indices[column]
            image_id = int(image_ids[index])
            if image_id in images:
                axis.imshow(images[image_id])
            axis.set_title(f"{name}: {image_id}\npredicted {predicted_mean[index]:.2f}, true {true_mean[index]:.2f}", fontsize=9)
    return _png(figure)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
