"""The training loop, apart from what it trains: phases of epochs of steps, resumable at an
exact step, with checkpoints, a check of the losses and of the weights before every save
(an update can overflow after a finite loss), the best checkpoint
by a validation metric, and actions (summaries, history, log lines) called around it.

Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
the loop is written out, in the manner of tensorflow/models' Orbit: a `Task` says what a
step, an epoch's data and a validation are; the loop says when they run and what is saved.
Where the run stands (phase, epoch, step in the epoch) is checkpointed with the weights,
so a killed job started again with the same command carries on from its last checkpoint.

Steps run `steps_per_loop` at a time inside one `tf.function` call (a `tf.while_loop`, as
Orbit's `create_tf_while_loop_fn` and Keras's `steps_per_execution` do), so an accelerator
is not left idle while the host dispatches each step. The host keeps the step counters
itself and reads nothing back inside a call; a call returns the loss of each of its steps,
read only when the loop logs or saves. A call is cut short at the next log step, the next
checkpoint step and the epoch's end, so logs, checkpoints and the loss check before each
save fall on the same global steps whatever `steps_per_loop` is, and a resumed run starts
at the exact step of its checkpoint. Requiring the intervals to be multiples of
`steps_per_loop` instead would fail every smoke-run override of them and still not align
with epochs of any length; a short call costs one more dispatch, not a new trace, since
the number of steps is a tensor argument.
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

CHECKPOINT_DIR, BEST_DIR = "checkpoints", "best"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


class NonFiniteWeightsError(FloatingPointError):
    """A weight became NaN or infinite after a finite loss (an overflowing update); the message names the step."""


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

    def model_variables(self) -> Sequence[tf.Variable]:
        """The model's variables (weights and statistics), checked finite before every save."""

    def begin_phase(self, phase: Phase) -> Callable[[Iterator], tf.Tensor]:
        """Readies the model for `phase` (which layers train) and returns its step: one
        batch from the iterator in, the loss summed over replicas out. The loop calls it
        inside its own `tf.function` (`multi_step`), so it must be traceable there: no
        host reads, no Python side effects that should happen every step."""

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
    steps_per_loop: int = 1  # steps in one tf.function call; calls end at log and checkpoint steps

    def __post_init__(self):
        for name in ("log_every_steps", "checkpoint_every_steps", "steps_per_loop"):
            if getattr(self, name) < 1:
                raise ValueError(f"--config.train.{name}={getattr(self, name)}: give a whole number of steps, 1 or more")


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    phase: Phase
    epoch: int  # 1-based
    global_step: int
    steps: int  # run in this process (fewer than an epoch's after a resume; none when killed at its end)
    epoch_steps: int  # all of the epoch's, which `seconds`, `train_loss` and `images_per_second` cover
    seconds: float  # the epoch's training, over every process that ran part of it
    train_loss: float  # the mean of all the epoch's step losses, over every process
    learning_rate: float
    images_per_second: float
    validation: dict[str, float]
    improved: bool  # the best validation so far: saved as the best checkpoint


class Action:
    """Something done around the loop (summaries, history, log lines); every hook optional."""

    def on_start(self, global_step: int, total_steps: int) -> None:
        pass

    def on_epoch_start(self, phase: Phase, epoch: int, first_step: int, steps_per_epoch: int, global_step: int) -> None:
        """Before an epoch's steps from `first_step` (not 0 when a run resumes mid-epoch)."""

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
    # The epoch so far, so that a resumed epoch reports all of it: a run killed right after
    # the checkpoint of an epoch's last step resumes into an epoch with no step left to run.
    epoch_loss_sum: tf.Variable
    epoch_losses: tf.Variable
    epoch_seconds: tf.Variable

    @classmethod
    def create(cls) -> "Progress":
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
        real = lambda name, value=0.0: tf.Variable(value, dtype=tf.float64, trainable=False, name=name)
        return cls(
            counter("phase"),
            counter("epoch"),
            counter("step"),
            counter("global_step"),
            real("best_validation", np.inf),
            real("epoch_loss_sum"),
            counter("epoch_losses"),
            real("epoch_seconds"),
        )

    def record_epoch(self, loss_sum: float, losses: int, seconds: float) -> None:
        self.epoch_loss_sum.assign(loss_sum)
        self.epoch_losses.assign(losses)
        self.epoch_seconds.assign(seconds)

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
    controller = _Controller(task, workdir, settings, actions, writes)
    controller.train()
    _remove_scratch_dir(writes)
    _wait_for_every_worker(strategy)
    return best_checkpoint(workdir)


class _Controller:
    """One run's state and its saving, as Orbit's Controller: `train` walks the phases and
    epochs from where the checkpoint left them; `_train_epoch` runs an epoch's steps with
    their logs and checkpoints; `_end_epoch` validates, saves and tells the actions."""

    def __init__(self, task: Task, workdir: str, settings: LoopSettings, actions: Sequence[Action], writes: bool):
        self.task, self.settings, self.actions = task, settings, actions
        self.progress = Progress.create()
        self.checkpoint = tf.train.Checkpoint(**task.checkpoint_items(), **self.progress.as_dict())
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, _save_dir(workdir, CHECKPOINT_DIR, writes), max_to_keep=settings.keep_checkpoints
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**task.checkpoint_items()), _save_dir(workdir, BEST_DIR, writes), max_to_keep=1
        )
        _restore(self.checkpoint, workdir, self.progress, task.phases)
        real = [variable for variable in task.model_variables() if tf.as_dtype(variable.dtype).is_floating]  # not seeds and counters
        self.weights_are_finite = tf.function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(variable)) for variable in real])
        )

    def train(self) -> None:
        task, progress = self.task, self.progress
        total_steps = task.steps_per_epoch * sum(phase.epochs for phase in task.phases)
        for action in self.actions:
            action.on_start(_read(progress.global_step), total_steps)
        while _read(progress.phase) < len(task.phases):
            phase_index = _read(progress.phase)
            phase = task.phases[phase_index]
            run_steps = multi_step(task.begin_phase(phase))
            while _read(progress.epoch) < phase.epochs:
                epoch, first_step = _read(progress.epoch), _read(progress.step)
                for action in self.actions:
                    action.on_epoch_start(phase, epoch, first_step, task.steps_per_epoch, _read(progress.global_step))
                losses, seconds = self._train_epoch(phase_index, phase, epoch, first_step, run_steps)
                self._end_epoch(phase, epoch, first_step, losses, seconds)
            progress.phase.assign(phase_index + 1)
            progress.epoch.assign(0)
            self.manager.save(checkpoint_number=_read(progress.global_step))

    def _train_epoch(
        self, phase_index: int, phase: Phase, epoch: int, first_step: int, run_steps: Callable
    ) -> tuple[_LossLog, float]:
        """The epoch's steps from `first_step`: (its losses, its seconds, a killed process's included)."""
        task, settings, progress = self.task, self.settings, self.progress
        global_step = _read(progress.global_step)
        iterator = task.train_iterator(phase_index, epoch, first_step)
        losses = _LossLog(phase, epoch, float(progress.epoch_loss_sum.numpy()), _read(progress.epoch_losses))
        seconds_before, started = float(progress.epoch_seconds.numpy()), time.perf_counter()
        step = first_step
        while step < task.steps_per_epoch:
            num_steps = steps_in_call(global_step, task.steps_per_epoch - step, settings)
            losses.add(global_step + 1, run_steps(iterator, tf.constant(num_steps, tf.int32)))
            step, global_step = step + num_steps, global_step + num_steps
            progress.step.assign(step)
            progress.global_step.assign(global_step)
            if global_step % settings.log_every_steps == 0 or step == task.steps_per_epoch:
                loss = losses.check()
                for action in self.actions:
                    action.on_log(global_step, loss, task.learning_rate(phase))
            if global_step % settings.checkpoint_every_steps == 0:
                losses.check()  # never save weights that a non-finite loss has reached,
                _check_weights(self.weights_are_finite, phase, epoch, global_step)  # or an overflowing update
                progress.record_epoch(*losses.total(), seconds_before + time.perf_counter() - started)
                self.manager.save(checkpoint_number=global_step)
        return losses, seconds_before + time.perf_counter() - started

    def _end_epoch(self, phase: Phase, epoch: int, first_step: int, losses: _LossLog, seconds: float) -> None:
        task, settings, progress = self.task, self.settings, self.progress
        global_step = _read(progress.global_step)
        _check_weights(self.weights_are_finite, phase, epoch, global_step)
        validation = task.validate()
        progress.epoch.assign(epoch + 1)
        progress.step.assign(0)
        progress.record_epoch(0.0, 0, 0.0)
        improved = validation[settings.best_metric] < float(progress.best_validation.numpy())
        if improved:
            progress.best_validation.assign(validation[settings.best_metric])
            self.best_manager.save(checkpoint_number=global_step)
        self.manager.save(checkpoint_number=global_step)
        epoch_end = EpochEnd(
            phase=phase,
            epoch=epoch + 1,
            global_step=global_step,
            steps=task.steps_per_epoch - first_step,
            epoch_steps=task.steps_per_epoch,
            seconds=seconds,
            train_loss=losses.mean(),
            learning_rate=task.learning_rate(phase),
            images_per_second=task.steps_per_epoch * task.global_batch_size / max(seconds, 1e-9),
            validation=validation,
            improved=improved,
        )
        for action in self.actions:
            action.on_epoch_end(epoch_end)


def best_checkpoint(workdir: str) -> str | None:
    """The run's checkpoint with the best validation, else its latest one."""
    return tf.train.latest_checkpoint(os.path.join(workdir, BEST_DIR)) or tf.train.latest_checkpoint(
        os.path.join(workdir, CHECKPOINT_DIR)
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The one worker whose checkpoints, logs and history count (TF decides, per strategy)."""
    return strategy.extended.should_checkpoint


def _wait_for_every_worker(strategy: tf.distribute.Strategy) -> None:
    """An all-reduce that every worker must join. The chief joins only after its last save,
    so no other worker then reads a best checkpoint that the chief is still writing, or
    has just rotated away (`max_to_keep`): that race lost a multi-worker run its test
    metrics. Within one process it returns at once."""

    @tf.function
    def all_reduce():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.ones([])), axis=None)

    all_reduce()


def multi_step(step: Callable[[Iterator], tf.Tensor]) -> Callable[[Iterator, tf.Tensor], tf.Tensor]:
    """`step` run `num_steps` times in one `tf.function` call: (iterator, int32 scalar) in,
    the loss of each step out ([num_steps], float64, which holds a float16, float32 or
    float64 loss exactly, so no finite loss becomes infinite on the way)."""

    @tf.function
    def run_steps(iterator, num_steps):
        losses = tf.TensorArray(tf.float64, size=num_steps)
        for index in tf.range(num_steps):
            losses = losses.write(index, tf.cast(step(iterator), tf.float64))
        return losses.stack()

    return run_steps


def steps_in_call(global_step: int, steps_left_in_epoch: int, settings: LoopSettings) -> int:
    """How many steps the next call runs from `global_step`: `steps_per_loop`, cut short so
    that it ends at the next log step, checkpoint step or the epoch's end, if sooner."""
    until = lambda every: every - global_step % every
    return min(settings.steps_per_loop, until(settings.log_every_steps), until(settings.checkpoint_every_steps), steps_left_in_epoch)


class _LossLog:
    """The step losses of an epoch, read back from the device only when checked; with the
    sum and number of those a killed process ran before (`Progress`)."""

    def __init__(self, phase: Phase, epoch: int, earlier_sum: float = 0.0, earlier_count: int = 0):
        self._phase, self._epoch = phase, epoch
        self._earlier_sum, self._earlier_count = earlier_sum, earlier_count
        self._pending: list[tuple[int, tf.Tensor]] = []
        self._values: list[float] = []

    def add(self, first_global_step: int, losses: tf.Tensor) -> None:
        """`losses`: those of one call's steps, the first of them at `first_global_step`."""
        self._pending.append((first_global_step, losses))

    def check(self) -> float:
        """The latest loss; raises if any loss since the last check is not finite."""
        for first_global_step, losses in self._pending:
            values = losses.numpy()
            non_finite = np.flatnonzero(~np.isfinite(values))
            if non_finite.size:
                value, global_step = values[non_finite[0]], first_global_step + int(non_finite[0])
                raise NonFiniteLossError(
                    f"the loss became {value} at global step {global_step} ({self._phase.name} phase, "
                    f"epoch {self._epoch + 1}); nothing after the last checkpoint was saved. Lower the "
                    f"learning rate of this phase (--config.{self._phase.name}.learning_rate) or turn off "
                    "mixed precision, then run again."
                )
            self._values.extend(values.tolist())
        self._pending = []
        return self._values[-1] if self._values else math.nan

    def total(self) -> tuple[float, int]:
        """(sum, number) of the epoch's checked losses, earlier processes' included."""
        return self._earlier_sum + float(np.sum(self._values)), self._earlier_count + len(self._values)

    def mean(self) -> float:
        self.check()
        loss_sum, count = self.total()
        return loss_sum / count if count else math.nan


def _check_weights(weights_are_finite: Callable[[], tf.Tensor], phase: Phase, epoch: int, global_step: int) -> None:
    if not bool(weights_are_finite()):
        raise NonFiniteWeightsError(
            f"a weight became NaN or infinite by global step {global_step} ({phase.name} phase, epoch {epoch + 1}) "
            "though every loss was finite: an update overflowed; nothing after the last checkpoint was saved. Lower "
            f"the learning rate of this phase (--config.{phase.name}.learning_rate) or turn off mixed precision, then run again."
        )


def _read(variable: tf.Variable) -> int:
    return int(variable.numpy())


def _restore(checkpoint: tf.train.Checkpoint, workdir: str, progress: Progress, phases: Sequence[Phase]) -> None:
    # Every worker restores the chief's checkpoint: workdir is shared (gs:// on a cluster).
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if not latest:
        return
    try:
        checkpoint.restore(latest).assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"cannot resume from {latest}: it does not hold all of this run's state, so it was written by another "
            f"version of the trainer or another model config ({error}). Train into a new --workdir, or resume this "
            "one with the code and config.json that wrote it."
        ) from None
    print(
        f"resumed from {latest}: phase {phases[min(_read(progress.phase), len(phases) - 1)].name}, "
        f"epoch {_read(progress.epoch)}, step {_read(progress.step)} of the epoch (global step {_read(progress.global_step)})",
        flush=True,
    )


def _scratch_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"nima_worker_{os.getpid()}")


def _save_dir(workdir: str, name: str, writes: bool) -> str:
    """The chief saves into workdir; other workers into scratch, as MultiWorker saving requires."""
    return os.path.join(workdir if writes else _scratch_dir(), name)


def _remove_scratch_dir(writes: bool) -> None:
    if not writes:
        shutil.rmtree(_scratch_dir(), ignore_errors=True)
