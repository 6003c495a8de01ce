"""Steps/s of the project's training loop against a plain `model.fit`, same model, same batches.

    python -m benchmarks.loop_benchmark [--steps=300] [--repeats=7]

All three train the same small NIMA (MobileNet alpha 0.25, 96 px, batch 32) with Adam and
the EMD loss on one in-memory batch repeated, on one device: `model.fit`; the task's step
called bare; and the real `loop.run` (its progress variables, loss checks, log and epoch
hooks, one checkpoint at the epoch's end). All three are timed over the same steps, from
the end of their first `LOG_EVERY` steps to the end of the run: the loop's first call
traces the phase's step (once per phase in a real run; reported apart); `model.fit` runs
those steps in a first call and is timed over a second (a batch callback to mark the
moment would make it sync every step); the bare step runs them untimed. The three are interleaved and repeated
and the median of each is reported with its runs, so that the machine warming up or a
noisy neighbour does not decide the ratio. Goal: the loop at least 0.95 of `model.fit`'s steps/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from configs import demo
from trainer import input_pipeline, loop, metrics, models, task

BATCH, SIZE = 32, 96
LOG_EVERY = 10  # the loop's first log step, from which every subject is timed
GOAL = 0.95


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    config = demo.get_config().model  # the project's own model settings: the benchmark drifts with none of them
    config.batchnorm_momentum = 0.0
    return models.build_model(config, SIZE)[0]


class _OneBatchTask:
    """The NIMA step on one repeated batch, for `loop.run`: only the data differs from training."""

    def __init__(self, batches: tf.data.Dataset, steps: int):
        self.strategy = tf.distribute.get_strategy()
        self.phases, self.steps_per_epoch, self.global_batch_size = (loop.Phase("train", 1),), steps, BATCH
        self.model = _model()
        self.optimizer = keras.optimizers.Adam(1e-3)
        self.optimizer.build(self.model.trainable_variables)
        self._batches = batches
        self.step = task.make_train_step(self.model, self.optimizer, self.strategy, BATCH, jit_compile=False)

    def checkpoint_items(self):
        return {"model": self.model, "optimizer": self.optimizer}

    def model_variables(self):
        return self.model.variables

    def begin_phase(self, phase):
        return self.step

    def train_iterator(self, phase_index, epoch, first_step):
        return iter(self.strategy.distribute_datasets_from_function(lambda context: self._batches))

    def learning_rate(self, phase):
        return float(self.optimizer.learning_rate.numpy())

    def validate(self):
        return {"emd": 0.0}


class _SteadyTiming(loop.Action):
    """When the first log step is reached: the first call traces `multi_step` anew in every
    `loop.run` (once per phase of a real run), which `model.fit` caches across calls, so the
    loop's rate is timed from there to the run's end, its epoch-end checkpoint included."""

    first_log: float | None = None  # perf_counter() then
    first_log_step = 0

    def on_log(self, global_step: int, loss: float, learning_rate: float) -> None:
        if self.first_log is None:
            self.first_log, self.first_log_step = time.perf_counter(), global_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="steps of each timed run")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32")
    distribution = rng.dirichlet(np.ones(10), BATCH).astype("float32")
    batches = tf.data.Dataset.from_tensors(
        {input_pipeline.PIXELS: pixels, input_pipeline.DISTRIBUTION: distribution}
    ).repeat()

    one_batch = _OneBatchTask(batches, args.steps)
    bare_iterator = one_batch.train_iterator(0, 0, 0)
    fit_model = _model()
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lambda y, p: metrics.emd(y, p))
    fit_data = batches.map(lambda b: (b[input_pipeline.PIXELS], b[input_pipeline.DISTRIBUTION]))
    settings = loop.LoopSettings(
        log_every_steps=LOG_EVERY, checkpoint_every_steps=10**9, keep_checkpoints=1, best_metric="emd",
        steps_per_loop=LOG_EVERY,
    )

    def run_fit() -> float:
        # Two calls, the second timed: a callback on every batch would make fit sync each step.
        fit_model.fit(fit_data, steps_per_epoch=LOG_EVERY, epochs=1, verbose=0)
        start = time.perf_counter()
        fit_model.fit(fit_data, steps_per_epoch=args.steps - LOG_EVERY, epochs=1, verbose=0)
        return (args.steps - LOG_EVERY) / (time.perf_counter() - start)

    def run_bare() -> float:
        losses = [one_batch.step(bare_iterator) for _ in range(LOG_EVERY)]
        float(losses[-1].numpy())
        start = time.perf_counter()
        losses = [one_batch.step(bare_iterator) for _ in range(args.steps - LOG_EVERY)]
        float(losses[-1].numpy())  # wait for the last step
        return (args.steps - LOG_EVERY) / (time.perf_counter() - start)

    first_calls: list[float] = []

    def run_loop() -> float:
        timing = _SteadyTiming()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as workdir:
            loop.run(one_batch, workdir, one_batch.strategy, settings, actions=[timing])
        first_calls.append(timing.first_log - started)
        return (args.steps - timing.first_log_step) / (time.perf_counter() - timing.first_log)

    runs = {"keras model.fit": run_fit, "task step, bare": run_bare, "loop.run (real bookkeeping)": run_loop}
    for run in runs.values():  # traces and warms every path before any timing
        run()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        names = list(runs)
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:  # rotate who goes first
            rates[name].append(runs[name]())
    medians = {name: statistics.median(values) for name, values in rates.items()}
    fit_rate = medians["keras model.fit"]
    print(f"{'training step':<32}{'median steps/s':>15}{'vs fit':>8}   runs")
    for name, value in medians.items():
        print(f"{name:<32}{value:>15.2f}{value / fit_rate:>8.2f}   {' '.join(f'{r:.2f}' for r in rates[name])}")
    print(f"loop.run's first call, which traces the phase's step once per process: {statistics.median(first_calls):.1f} s (median)")
    ratio = medians["loop.run (real bookkeeping)"] / fit_rate
    print(f"goal: loop.run >= {GOAL:.2f} of model.fit: {'met' if ratio >= GOAL else 'NOT met'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
