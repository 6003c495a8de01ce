"""What is done around the training loop: TensorBoard summaries, history.csv, the epoch's progress bar and line."""

from __future__ import annotations

import sys
import time

import pandas as pd
import tensorflow as tf
import tqdm

from trainer import loop

# Those a head's validation has (trainer.metrics.evaluate_predictions) go to TensorBoard.
SUMMARISED_VALIDATION_METRICS = (
    "emd", "rmse_mean", "log_loss", "accuracy", "lcc_mean", "srcc_mean", "lcc_std", "srcc_std", "mae_mean", "roc_auc",
)
# A log line's figures: the first of these losses the split has (each head's selection
# metric, trainer/heads.py), then the ranking ones.
_HEADLINE_LOSSES = {"emd": "EMD", "log_loss": "log loss", "rmse_mean": "RMSE"}
_HEADLINE_RANKING = {"accuracy": "accuracy", "lcc_mean": "LCC", "srcc_mean": "SRCC"}


class TensorBoard(loop.Action):
    def __init__(self, log_dir: str):
        self._writer = tf.summary.create_file_writer(log_dir)

    def on_log(self, global_step: int, loss: float, learning_rate: float) -> None:
        with self._writer.as_default(step=global_step):
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("train/learning_rate", learning_rate)

    def on_epoch_end(self, epoch_end: loop.EpochEnd) -> None:
        with self._writer.as_default(step=epoch_end.global_step):
            tf.summary.scalar("train/images_per_second", epoch_end.images_per_second)
            for name in SUMMARISED_VALIDATION_METRICS:
                if name in epoch_end.validation:
                    tf.summary.scalar(f"validation/{name}", epoch_end.validation[name])


class History(loop.Action):
    """One CSV row an epoch; a resumed run replaces the rows it is redoing."""

    def __init__(self, path: str):
        self._path = path

    def on_epoch_end(self, epoch_end: loop.EpochEnd) -> None:
        row = {
            "phase": epoch_end.phase.name,
            "epoch": epoch_end.epoch,
            "global_step": epoch_end.global_step,
            "train_loss": epoch_end.train_loss,
            "learning_rate": epoch_end.learning_rate,
            "images_per_second": epoch_end.images_per_second,
            "seconds": epoch_end.seconds,
            **{f"val_{name}": value for name, value in epoch_end.validation.items()},
        }
        history = pd.DataFrame()
        if tf.io.gfile.exists(self._path):
            with tf.io.gfile.GFile(self._path) as file:
                history = pd.read_csv(file)
            history = history[history["global_step"] < row["global_step"]]
        history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
        with tf.io.gfile.GFile(self._path, "w") as file:
            history.to_csv(file, index=False)


class EpochProgressBar(loop.Action):
    """A bar an epoch on a terminal, as Keras `fit` shows: steps done, the loss, the ETA.

    It moves at each log step (`--config.train.log_every_steps`) and is cleared at the
    epoch's end, where `EpochLog` prints the epoch's line; off where stderr is no terminal.
    """

    def __init__(self):
        self._bar, self._epoch_start = None, (0, 0)

    def on_epoch_start(self, phase: loop.Phase, epoch: int, first_step: int, steps_per_epoch: int, global_step: int) -> None:
        self._epoch_start = (first_step, global_step)
        self._bar = tqdm.tqdm(
            total=steps_per_epoch, initial=first_step, desc=f"{phase.name} epoch {epoch + 1}/{phase.epochs}",
            unit="step", leave=False, file=sys.stderr, disable=None,
        )

    def on_log(self, global_step: int, loss: float, learning_rate: float) -> None:
        if self._bar is not None:
            first_step, first_global_step = self._epoch_start
            self._bar.update(first_step + global_step - first_global_step - self._bar.n)
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch_end(self, epoch_end: loop.EpochEnd) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EpochLog(loop.Action):
    """A line an epoch: speed, loss, validation and the time left at the measured rate."""

    def on_start(self, global_step: int, total_steps: int) -> None:
        self._total, self._done, self._seconds, self._steps = total_steps, global_step, 0.0, 0

    def on_epoch_end(self, epoch_end: loop.EpochEnd) -> None:
        self._done = epoch_end.global_step
        self._seconds += epoch_end.seconds
        self._steps += epoch_end.epoch_steps
        remaining = (self._total - self._done) * self._seconds / max(self._steps, 1)
        print(
            f"{epoch_end.phase.name} epoch {epoch_end.epoch}/{epoch_end.phase.epochs}: {epoch_end.epoch_steps} steps in "
            f"{epoch_end.seconds:.1f}s ({epoch_end.epoch_steps / max(epoch_end.seconds, 1e-9):.2f} steps/s, "
            f"{epoch_end.images_per_second:.1f} images/s), loss {epoch_end.train_loss:.4f} | validation "
            f"{headline(epoch_end.validation)}{' (best)' if epoch_end.improved else ''} | {self._done}/{self._total} steps, "
            f"ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}",
            flush=True,
        )


def headline(metrics: dict[str, float]) -> str:
    """A split's main figures as a log line shows them: "EMD 0.0812, accuracy 0.7640, LCC ..."."""
    loss = [(label, metrics[name]) for name, label in _HEADLINE_LOSSES.items() if name in metrics][:1]
    shown = loss + [(label, metrics[name]) for name, label in _HEADLINE_RANKING.items()]
    return ", ".join(f"{label} {value:.4f}" for label, value in shown)
