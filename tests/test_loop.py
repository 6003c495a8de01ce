"""The training loop in-process against a small fake task: phases, actions, best checkpoint,
resume at an exact step, the finite-loss check before every save, and all of it with
several steps in one tf.function call. Seconds, not minutes: the end-to-end runs of the
real task are in test_training.py."""

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
    NaN from then on, as an overflowing real step would. `overflow_at`: the step whose
    update overflows the weights to infinity after a finite loss, as float32 Adam can.
    `validation`: scripted values of the metric, one an epoch; by default the loss on a
    fixed batch.
    """

    global_batch_size = 4
    phases = PHASES
    steps_per_epoch = STEPS_PER_EPOCH

    def __init__(
        self,
        nan_at: tuple[int, int, int] | None = None,
        validation: list[float] | None = None,
        overflow_at: tuple[int, int, int] | None = None,
    ):
        self.weights = tf.Variable(tf.zeros([3]), name="weights")
        self._nan_at, self._validation, self._overflow_at = nan_at, list(validation or []), overflow_at
        self.validated = 0

    def checkpoint_items(self):
        return {"model": tf.train.Checkpoint(weights=self.weights)}

    def model_variables(self):
        return [self.weights]

    def begin_phase(self, phase):
        rate = 0.1 if phase.name == "warm" else 0.05

        @tf.function
        def step(iterator):
            inputs, targets, scale = next(iterator)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.linalg.matvec(inputs, self.weights) - targets) ** 2)
            self.weights.assign_sub(rate * tape.gradient(loss, self.weights) * scale * scale)
            return loss

        return step

    def train_iterator(self, phase_index, epoch, first_step):
        def batch(step):
            seed = tf.stack([tf.constant(phase_index * 100 + epoch, tf.int64), step])
            inputs = tf.random.stateless_normal([self.global_batch_size, 3], seed=seed)
            if self._nan_at is not None and (phase_index, epoch) == self._nan_at[:2]:
                inputs = tf.where(step == self._nan_at[2], tf.fill(tf.shape(inputs), math.nan), inputs)
            overflows = self._overflow_at is not None and (phase_index, epoch) == self._overflow_at[:2]
            scale = tf.where(tf.logical_and(overflows, step == (self._overflow_at or (0, 0, 0))[2]), 1e38, 1.0)
            return inputs, tf.linalg.matvec(inputs, tf.constant([1.0, -2.0, 0.5])), scale

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
        self.logged, self.losses, self.epochs, self.stop_at_step = [], [], [], stop_at_step

    def on_log(self, global_step, loss, learning_rate):
        self.logged.append(global_step)
        self.losses.append(loss)
        if global_step == self.stop_at_step:
            raise KeyboardInterrupt(f"killed at step {global_step}")

    def on_epoch_end(self, epoch_end):
        self.epochs.append(epoch_end)


def _settings(log_every=4, checkpoint_every=5, steps_per_loop=1):
    return loop.LoopSettings(
        log_every_steps=log_every, checkpoint_every_steps=checkpoint_every, keep_checkpoints=10, best_metric="emd",
        steps_per_loop=steps_per_loop,
    )


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


def test_an_update_that_overflows_after_a_finite_loss_is_never_saved(tmp_path):
    """Step 5's loss is finite, its update makes the weights infinite, and step 5 is a
    checkpoint step: checking the losses alone would save those weights for a resume."""
    task = _LinearTask(overflow_at=(0, 0, 4))
    recorder = _Recorder()
    with pytest.raises(loop.NonFiniteWeightsError, match=r"by global step 5 \(warm phase, epoch 1\).*--config.warm.learning_rate"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings(log_every=1, checkpoint_every=5), [recorder])
    assert all(np.isfinite(recorder.losses)) and recorder.logged[-1] == 5
    assert not np.isfinite(task.weights.numpy()).all()
    assert _saved_weights(tmp_path / loop.CHECKPOINT_DIR) == {}


def test_a_non_finite_loss_in_a_later_phase_names_that_phase_and_epoch(tmp_path):
    task = _LinearTask(nan_at=(1, 1, 4))
    with pytest.raises(loop.NonFiniteLossError, match=r"at global step 17 \(tune phase, epoch 2\).*--config.tune.learning_rate"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings())
    assert task.validated == 2


def _count_steps_per_call(monkeypatch) -> list[int]:
    """The number of steps of every call the loop makes, in order."""
    calls, multi_step = [], loop.multi_step

    def counting(step):
        run_steps = multi_step(step)

        def run(iterator, num_steps):
            calls.append(int(num_steps))
            return run_steps(iterator, num_steps)

        return run

    monkeypatch.setattr(loop, "multi_step", counting)
    return calls


def test_a_call_runs_steps_per_loop_steps_cut_at_each_log_checkpoint_and_epoch_end(tmp_path, monkeypatch):
    calls = _count_steps_per_call(monkeypatch)
    loop.run(_LinearTask(), str(tmp_path / "cut"), tf.distribute.get_strategy(), _settings(steps_per_loop=4))
    # Logs every 4 steps, checkpoints every 5, epochs of 6: each call ends at the first of those.
    assert calls == [4, 1, 1, 2, 2, 2, 3, 1, 2]
    calls.clear()
    loop.run(_LinearTask(), str(tmp_path / "whole_epochs"), tf.distribute.get_strategy(), _settings(100, 100, 100))
    assert calls == [STEPS_PER_EPOCH] * 3


@pytest.mark.parametrize("steps_per_loop", [4, 100])
def test_several_steps_a_call_log_save_and_end_exactly_as_one_step_a_call(tmp_path, steps_per_loop):
    runs = {}
    for name, steps in (("one", 1), ("several", steps_per_loop)):
        task, recorder = _LinearTask(), _Recorder()
        loop.run(task, str(tmp_path / name), tf.distribute.get_strategy(), _settings(steps_per_loop=steps), [recorder])
        runs[name] = task, recorder, _saved_weights(tmp_path / name / loop.CHECKPOINT_DIR)
    (one_task, one, one_saved), (task, several, saved) = runs["one"], runs["several"]
    assert several.logged == one.logged == [4, 6, 8, 12, 16, 18]
    np.testing.assert_allclose(several.losses, one.losses, rtol=1e-6)
    np.testing.assert_allclose([e.train_loss for e in several.epochs], [e.train_loss for e in one.epochs], rtol=1e-6)
    assert sorted(saved) == sorted(one_saved) == [5, 6, 10, 12, 15, 18]
    for step, weights in saved.items():
        np.testing.assert_allclose(weights, one_saved[step], rtol=1e-6)
    np.testing.assert_allclose(task.weights.numpy(), one_task.weights.numpy(), rtol=1e-6)


def test_a_run_killed_mid_epoch_resumes_at_the_exact_step_with_several_steps_a_call(tmp_path):
    strategy = tf.distribute.get_strategy()
    whole = _LinearTask()
    loop.run(whole, str(tmp_path / "whole"), strategy, _settings())

    with pytest.raises(KeyboardInterrupt):
        loop.run(_LinearTask(), str(tmp_path / "resumed"), strategy, _settings(steps_per_loop=4), [_Recorder(stop_at_step=12)])
    assert max(_saved_weights(tmp_path / "resumed" / loop.CHECKPOINT_DIR)) == 10  # step 4 of tune's first epoch

    resumed_task, resumed = _LinearTask(), _Recorder()
    loop.run(resumed_task, str(tmp_path / "resumed"), strategy, _settings(steps_per_loop=4), [resumed])
    assert resumed.logged == [12, 16, 18] and [e.global_step for e in resumed.epochs] == [12, 18]
    assert resumed.epochs[0].steps == 2
    np.testing.assert_allclose(resumed_task.weights.numpy(), whole.weights.numpy(), rtol=1e-6)


class _KilledAtValidation(_LinearTask):
    """Killed after the checkpoint of its first epoch's last step, before that epoch ends."""

    def validate(self):
        raise KeyboardInterrupt("killed between the checkpoint of step 6 and the epoch's end")


@pytest.mark.parametrize("killed_mid_epoch_too", [False, True], ids=["at-the-end", "mid-epoch-then-at-the-end"])
def test_an_epoch_killed_after_its_last_checkpoint_is_reported_once_with_all_its_figures(tmp_path, killed_mid_epoch_too):
    strategy, settings = tf.distribute.get_strategy(), _settings(log_every=2, checkpoint_every=3)
    whole = _Recorder()
    loop.run(_LinearTask(), str(tmp_path / "whole"), strategy, settings, [whole])

    workdir = str(tmp_path / "killed")
    if killed_mid_epoch_too:  # and the epoch's first half ran in yet another process
        with pytest.raises(KeyboardInterrupt):
            loop.run(_LinearTask(), workdir, strategy, settings, [_Recorder(stop_at_step=4)])
    with pytest.raises(KeyboardInterrupt):
        loop.run(_KilledAtValidation(), workdir, strategy, settings)
    assert max(_saved_weights(tmp_path / "killed" / loop.CHECKPOINT_DIR)) == STEPS_PER_EPOCH

    resumed = _Recorder()
    loop.run(_LinearTask(), workdir, strategy, settings, [resumed])
    assert [(e.phase.name, e.epoch) for e in resumed.epochs] == [(e.phase.name, e.epoch) for e in whole.epochs]
    first, reference = resumed.epochs[0], whole.epochs[0]
    assert first.steps == 0  # nothing left to run in this process
    np.testing.assert_allclose(first.train_loss, reference.train_loss, rtol=1e-6)
    assert 0 < first.seconds and np.isfinite(first.images_per_second) and first.images_per_second > 0


def test_a_non_finite_loss_inside_a_call_is_named_at_its_step_and_never_saved(tmp_path, monkeypatch):
    # Saves every 5 steps, logs every 100, up to 6 steps a call: the call of tune's global
    # steps 7..10 hits NaN at step 8 and runs on; the save of step 10 must refuse it.
    calls = _count_steps_per_call(monkeypatch)
    task = _LinearTask(nan_at=(1, 0, 1))
    with pytest.raises(loop.NonFiniteLossError, match=r"loss became nan at global step 8 \(tune phase, epoch 1\)"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings(log_every=100, checkpoint_every=5, steps_per_loop=6))
    assert calls == [5, 1, 4]
    assert not np.isfinite(task.weights.numpy()).all()
    saved = _saved_weights(tmp_path / loop.CHECKPOINT_DIR)
    assert sorted(saved) == [5, 6] and all(np.isfinite(weights).all() for weights in saved.values())


def test_steps_per_loop_below_one_says_which_flag():
    with pytest.raises(ValueError, match=r"--config.train.steps_per_loop=0: give a whole number of steps"):
        _settings(steps_per_loop=0)


def test_a_checkpoint_without_the_run_state_says_which_checkpoint_and_what_to_do(tmp_path):
    task = _LinearTask()
    tf.train.Checkpoint(model=task.checkpoint_items()["model"]).save(str(tmp_path / loop.CHECKPOINT_DIR / "ckpt"))
    with pytest.raises(ValueError, match=r"cannot resume from .*ckpt-1: .*Train into a new --workdir"):
        loop.run(task, str(tmp_path), tf.distribute.get_strategy(), _settings(), [_Recorder()])
