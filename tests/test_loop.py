"""The training loop in-process against a small fake task: phases, actions, best checkpoint,
resume at an exact step, and the finite-loss check before every save. Seconds, not minutes:
the end-to-end runs of the real task are in test_training.py."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from trainer import loop

STEPS_PER_EPOCH = 6
PHASES = (loop.Phase("warm", 1), loop.Phase("tune", 2))


class _LinearTask:
    """Least squares by SGD; the batch of a step depends only on (phase, epoch, step).

    `nan_at`: the (phase index, epoch, step) whose batch is NaN, which makes the weights
    NaN from then on, as an overflowing real step would. `validation`: scripted values of
    the metric, one an epoch; by default the loss on a fixed batch.
    """

    global_batch_size = 4
    phases = PHASES
    steps_per_epoch = STEPS_PER_EPOCH

    def __init__(self, nan_at: tuple[int, int, int] | None = None, validation: list[float] | None = None):
        self.weights = tf.Variable(tf.zeros([3]), name="weights")
        self._nan_at, self._validation = nan_at, list(validation or [])
        self.validated = 0

    def checkpoint_items(self):
        return {"model": tf.train.Checkpoint(weights=self.weights)}

    def begin_phase(self, phase):
        rate = 0.1 if phase.name == "warm" else 0.05

        @tf.function
        def step(iterator):
            inputs, targets = next(iterator)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.linalg.matvec(inputs, self.weights) - targets) ** 2)
            self.weights.assign_sub(rate * tape.gradient(loss, self.weights))
            return loss

        return step

    def train_iterator(self, phase_index, epoch, first_step):
        def batch(step):
            seed = tf.stack([tf.constant(phase_index * 100 + epoch, tf.int64), step])
            inputs = tf.random.stateless_normal([self.global_batch_size, 3], seed=seed)
            if self._nan_at is not None and (phase_index, epoch) == self._nan_at[:2]:
                inputs = tf.where(step == self._nan_at[2], tf.fill(tf.shape(inputs), math.nan), inputs)
            return inputs, tf.linalg.matvec(inputs, tf.constant([1.0, -2.0, 0.5]))

        return iter(tf.data.Dataset.range(first_step, STEPS_PER_EPOCH).map(batch))

    def learning_rate(self, phase):
        return 0.1

    def validate(self):
        self.validated += 1
        if self._validation:
            return {"emd": self._validation.pop(0)}
        return {"emd": float(tf.reduce_sum((self.weights - [1.0, -2.0, 0.5]) ** 2))}


class _Recorder(loop.Action):
    def __init__(self, stop_at_step: int | None = None):
        self.logged, self.epochs, self.stop_at_step = [], [], stop_at_step

    def on_log(self, global_step, loss, learning_rate):
        self.logged.append(global_step)
        if global_step == self.stop_at_step:
            raise KeyboardInterrupt(f"killed at step {global_step}")

    def on_epoch_end(self, epoch_end):
        self.epochs.append(epoch_end)


def _settings(log_every=4, checkpoint_every=5):
    return loop.LoopSettings(log_every_steps=log_every, checkpoint_every_steps=checkpoint_every, keep_checkpoints=10, best_metric="emd")


def _saved_weights(directory: pathlib.Path) -> dict[int, np.ndarray]:
    saved = {}
    for index in directory.glob("ckpt-*.index"):
        path = str(index.with_suffix(""))
        saved[int(path.rsplit("-", 1)[1])] = tf.train.load_variable(path, "model/weights/.ATTRIBUTES/VARIABLE_VALUE")
    return saved


def test_runs_every_phase_epoch_and_hook_in_order(tmp_path):
    recorder = _Recorder()
    loop.run(_LinearTask(), str(tmp_path), tf.distribute.get_strategy(), _settings(), [recorder])
    assert [(e.phase.name, e.epoch, e.global_step, e.steps) for e in recorder.epochs] == [
        ("warm", 1, 6, 6), ("tune", 1, 12, 6), ("tune", 2, 18, 6)]
    assert recorder.logged == [4, 6, 8, 12, 16, 18]  # every 4th step and each epoch's last
    assert all(np.isfinite(e.train_loss) for e in recorder.epochs)
    assert sorted(_saved_weights(tmp_path / loop.CHECKPOINT_DIR)) == [5, 6, 10, 12, 15, 18]


def test_best_checkpoint_holds_the_weights_of_the_lowest_validation(tmp_path):
    weights_after_epoch = []

    class _Snapshot(loop.Action):
        def on_epoch_end(self, epoch_end):
            weights_after_epoch.append(task.weights.numpy().copy())

    task = _LinearTask(validation=[3.0, 1.0, 2.0])
    recorder = _Recorder()
    best = loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings(), [recorder, _Snapshot()])
    assert [e.improved for e in recorder.epochs] == [True, True, False]
    assert best.endswith("ckpt-12") and pathlib.Path(best).parent.name == loop.BEST_DIR
    np.testing.assert_array_equal(_saved_weights(tmp_path / loop.BEST_DIR)[12], weights_after_epoch[1])


def test_a_killed_run_resumes_at_its_last_checkpoint_and_ends_like_an_uninterrupted_one(tmp_path):
    strategy = tf.distribute.get_strategy()
    whole = _LinearTask()
    loop.run(whole, str(tmp_path / "whole"), strategy, _settings())

    killed = _Recorder(stop_at_step=8)
    with pytest.raises(KeyboardInterrupt):
        loop.run(_LinearTask(), str(tmp_path / "resumed"), strategy, _settings(), [killed])
    assert max(_saved_weights(tmp_path / "resumed" / loop.CHECKPOINT_DIR)) == 6  # the last save before step 8

    resumed_task, resumed = _LinearTask(), _Recorder()
    loop.run(resumed_task, str(tmp_path / "resumed"), strategy, _settings(), [resumed])
    assert resumed.logged[0] == 8 and [e.global_step for e in resumed.epochs] == [12, 18]
    assert resumed.epochs[0].steps == 6  # epoch 1 of `tune` began at the checkpoint of step 6
    np.testing.assert_allclose(resumed_task.weights.numpy(), whole.weights.numpy(), rtol=1e-6)


def test_a_non_finite_loss_stops_the_run_before_any_checkpoint_holds_its_weights(tmp_path):
    # The loss is logged every 10 steps and saved every 4: the NaN of step 3 must stop the
    # run at the save of step 4, not reach that checkpoint and be noticed at step 6.
    task = _LinearTask(nan_at=(0, 0, 2))
    with pytest.raises(loop.NonFiniteLossError, match=r"loss became nan at global step 3 \(warm phase, epoch 1\)"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings(log_every=10, checkpoint_every=4))
    assert not np.isfinite(task.weights.numpy()).all()
    saved = _saved_weights(tmp_path / loop.CHECKPOINT_DIR)
    assert all(np.isfinite(weights).all() for weights in saved.values()), saved


def test_a_non_finite_loss_in_a_later_phase_names_that_phase_and_epoch(tmp_path):
    task = _LinearTask(nan_at=(1, 1, 4))
    with pytest.raises(loop.NonFiniteLossError, match=r"at global step 17 \(tune phase, epoch 2\).*--config.tune.learning_rate"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings())
    assert task.validated == 2
