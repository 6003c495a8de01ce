"""The training loop, apart from what it trains: phases of epochs of steps, resumable at an
exact step, with checkpoints, a finite-loss check before every save, the best checkpoint
by a validation metric, and actions (summaries, history, log lines) called around it.

Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
the loop is written out, in the manner of tensorflow/models' Orbit: a `Task` says what a
step, an epoch's data and a validation are; the loop says when they run and what is saved.
Where the run stands (phase, epoch, step in the epoch) is checkpointed with the weights,
so a killed job started again with the same command carries on from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

CHECKPOINT_DIR, BEST_DIR = "checkpoints", "best"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    epochs: int


class Task(Protocol):
    """What the loop trains. Everything it returns is built under the loop's strategy."""

    phases: Sequence[Phase]
    steps_per_epoch: int
    global_batch_size: int

    def checkpoint_items(self) -> dict[str, tf.Module]:
        """Weights and optimizer states, saved and restored with the run."""

    def begin_phase(self, phase: Phase) -> Callable[[Iterator], tf.Tensor]:
        """Readies the model for `phase` (which layers train) and returns its step: one
        batch from the iterator in, the loss summed over replicas out."""

    def train_iterator(self, phase_index: int, epoch: int, first_step: int) -> Iterator:
        """Batches of one epoch from `first_step` on; the same batches however often resumed."""

    def learning_rate(self, phase: Phase) -> float:
        """The current rate, for summaries."""

    def validate(self) -> dict[str, float]:
        """Metrics on the validation split; the loop keeps the checkpoint best by one of them."""


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    log_every_steps: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    best_metric: str  # a key of `Task.validate()`, lower is better


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    phase: Phase
    epoch: int  # 1-based
    global_step: int
    steps: int  # run in this process (fewer than an epoch's after a resume)
    seconds: float
    train_loss: float
    learning_rate: float
    images_per_second: float
    validation: dict[str, float]
    improved: bool  # the best validation so far: saved as the best checkpoint


class Action:
    """Something done around the loop (summaries, history, log lines); every hook optional."""

    def on_start(self, global_step: int, total_steps: int) -> None:
        pass

    def on_log(self, global_step: int, loss: float, learning_rate: float) -> None:
        pass

    def on_epoch_end(self, epoch_end: EpochEnd) -> None:
        pass


@dataclasses.dataclass
class Progress:
    """Where the run stands; checkpointed with the weights and optimizer state."""

    phase: tf.Variable
    epoch: tf.Variable
    step: tf.Variable
    global_step: tf.Variable
    best_validation: tf.Variable

    @classmethod
    def create(cls) -> "Progress":
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
        return cls(
            counter("phase"),
            counter("epoch"),
            counter("step"),
            counter("global_step"),
            tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_validation"),
        )

    def as_dict(self) -> dict[str, tf.Variable]:
        # Not dataclasses.asdict: it deep-copies, and the checkpoint must track these very variables.
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def run(
    task: Task,
    workdir: str,
    strategy: tf.distribute.Strategy,
    settings: LoopSettings,
    actions: Sequence[Action] = (),
) -> str:
    """Trains (or resumes) every phase of `task`; returns the best checkpoint's path."""
    writes = is_chief(strategy)
    progress = Progress.create()
    checkpoint = tf.train.Checkpoint(**task.checkpoint_items(), **progress.as_dict())
    manager = tf.train.CheckpointManager(
        checkpoint, _save_dir(workdir, CHECKPOINT_DIR, writes), max_to_keep=settings.keep_checkpoints
    )
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(**task.checkpoint_items()), _save_dir(workdir, BEST_DIR, writes), max_to_keep=1
    )
    _restore(checkpoint, workdir, progress, task.phases)
    total_steps = task.steps_per_epoch * sum(phase.epochs for phase in task.phases)
    for action in actions:
        action.on_start(_read(progress.global_step), total_steps)

    while _read(progress.phase) < len(task.phases):
        phase_index = _read(progress.phase)
        phase = task.phases[phase_index]
        train_step = task.begin_phase(phase)
        while _read(progress.epoch) < phase.epochs:
            epoch, first_step = _read(progress.epoch), _read(progress.step)
            iterator = task.train_iterator(phase_index, epoch, first_step)
            losses = _LossLog(phase, epoch)
            started = time.perf_counter()
            for step in range(first_step, task.steps_per_epoch):
                losses.add(_read(progress.global_step) + 1, train_step(iterator))
                progress.step.assign(step + 1)
                progress.global_step.assign_add(1)
                global_step = _read(progress.global_step)
                if global_step % settings.log_every_steps == 0 or step + 1 == task.steps_per_epoch:
                    loss = losses.check()
                    for action in actions:
                        action.on_log(global_step, loss, task.learning_rate(phase))
                if global_step % settings.checkpoint_every_steps == 0:
                    losses.check()  # never save weights that a non-finite loss has reached
                    manager.save(checkpoint_number=global_step)
            seconds = time.perf_counter() - started
            validation = task.validate()
            progress.epoch.assign(epoch + 1)
            progress.step.assign(0)
            improved = validation[settings.best_metric] < float(progress.best_validation.numpy())
            if improved:
                progress.best_validation.assign(validation[settings.best_metric])
                best_manager.save(checkpoint_number=_read(progress.global_step))
            manager.save(checkpoint_number=_read(progress.global_step))
            steps = task.steps_per_epoch - first_step
            epoch_end = EpochEnd(
                phase=phase,
                epoch=epoch + 1,
                global_step=_read(progress.global_step),
                steps=steps,
                seconds=seconds,
                train_loss=losses.mean(),
                learning_rate=task.learning_rate(phase),
                images_per_second=steps * task.global_batch_size / max(seconds, 1e-9),
                validation=validation,
                improved=improved,
            )
            for action in actions:
                action.on_epoch_end(epoch_end)
        progress.phase.assign(phase_index + 1)
        progress.epoch.assign(0)
        manager.save(checkpoint_number=_read(progress.global_step))
    _remove_scratch_dir(writes)
    return best_checkpoint(workdir)


def best_checkpoint(workdir: str) -> str | None:
    """The run's checkpoint with the best validation, else its latest one."""
    return tf.train.latest_checkpoint(os.path.join(workdir, BEST_DIR)) or tf.train.latest_checkpoint(
        os.path.join(workdir, CHECKPOINT_DIR)
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The one worker whose checkpoints, logs and history count (TF decides, per strategy)."""
    return strategy.extended.should_checkpoint


class _LossLog:
    """The step losses of an epoch, read back from the device only when checked."""

    def __init__(self, phase: Phase, epoch: int):
        self._phase, self._epoch = phase, epoch
        self._pending: list[tuple[int, tf.Tensor]] = []
        self._values: list[float] = []

    def add(self, global_step: int, loss: tf.Tensor) -> None:
        self._pending.append((global_step, loss))

    def check(self) -> float:
        """The latest loss; raises if any loss since the last check is not finite."""
        for global_step, loss in self._pending:
            value = float(loss.numpy())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the loss became {value} at global step {global_step} ({self._phase.name} phase, "
                    f"epoch {self._epoch + 1}); nothing after the last checkpoint was saved. Lower the "
                    f"learning rate of this phase (--config.{self._phase.name}.learning_rate) or turn off "
                    "mixed precision, then run again."
                )
            self._values.append(value)
        self._pending = []
        return self._values[-1] if self._values else math.nan

    def mean(self) -> float:
        self.check()
        return float(np.mean(self._values)) if self._values else math.nan


def _read(variable: tf.Variable) -> int:
    return int(variable.numpy())


def _restore(checkpoint: tf.train.Checkpoint, workdir: str, progress: Progress, phases: Sequence[Phase]) -> None:
    # Every worker restores the chief's checkpoint: workdir is shared (gs:// on a cluster).
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if not latest:
        return
    checkpoint.restore(latest).assert_existing_objects_matched()
    logging.info(
        "resumed from %s: phase %s, epoch %d, step %d of the epoch (global step %d)",
        latest,
        phases[min(_read(progress.phase), len(phases) - 1)].name,
        _read(progress.epoch),
        _read(progress.step),
        _read(progress.global_step),
    )


def _scratch_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"nima_worker_{os.getpid()}")


def _save_dir(workdir: str, name: str, writes: bool) -> str:
    """The chief saves into workdir; other workers into scratch, as MultiWorker saving requires."""
    return os.path.join(workdir if writes else _scratch_dir(), name)


def _remove_scratch_dir(writes: bool) -> None:
    if not writes:
        shutil.rmtree(_scratch_dir(), ignore_errors=True)
