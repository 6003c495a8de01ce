"""Steps/s of the project's training step against a plain Keras `model.fit`, same model, same batches.

    python -m benchmarks.loop_benchmark [--seconds=12] [--rounds=2]

Both train the demo's NIMA (MobileNet alpha 0.25 at 96 px, weights none, batch 32) with
Adam and the EMD loss (`trainer.metrics.emd`) on one in-memory batch of uint8 pixels, as
the input pipeline delivers them, repeated (`Dataset.from_tensors(batch).repeat()`), on one
device (`tf.distribute.get_strategy()`), without XLA.

- project step, bare: `train._make_train_step(model, optimizer, strategy, 32, jit_compile=False)`
  called on the iterator of `strategy.distribute_datasets_from_function`, as trainer/train.py does.
- project step + loop bookkeeping: the same, plus what trainer/train.py does around each
  step: read `progress.global_step` (a host copy), keep the loss tensor, assign
  `progress.step`, `assign_add` `progress.global_step`, read it again; every
  `log_every_steps` (the demo's 5) check the pending losses on the host and write two
  TensorBoard scalars. Checkpoints (every 20 steps in the demo) are left out.
- model.fit: `model.compile(optimizer=Adam, loss=emd, jit_compile=False)`, one
  `fit(steps_per_epoch=N)` call timed whole (its per-call setup is reported apart).

Each is warmed up (traced) first; rounds alternate the order. Goal: project >= 0.95 of fit.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import _common
from configs import demo
from trainer import input_pipeline, metrics, models, train

BATCH = 32
GOAL = 0.95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="about this long per subject and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    config = demo.get_config()
    config.train.global_batch_size = BATCH
    size = config.input.image_size
    assert (config.model.alpha, size, config.model.weights, config.train.jit_compile) == (0.25, 96, "none", False)
    rng = np.random.default_rng(0)
    batch = {
        input_pipeline.PIXELS: rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8),
        input_pipeline.DISTRIBUTION: rng.dirichlet(np.ones(10), BATCH).astype(np.float32),
    }
    batches = tf.data.Dataset.from_tensors(batch).repeat()
    strategy = tf.distribute.get_strategy()

    keras.utils.set_random_seed(0)
    with strategy.scope():
        loop_model, _ = models.build_model(config.model, size)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(loop_model.trainable_variables)
    train_step = train._make_train_step(loop_model, optimizer, strategy, BATCH, jit_compile=False)
    iterator = iter(strategy.distribute_datasets_from_function(lambda context: batches))
    progress = train._Progress.create()
    logdir = tempfile.mkdtemp(prefix="loop_benchmark_")
    writer = tf.summary.create_file_writer(logdir)

    fit_model, _ = models.build_model(config.model, size)
    fit_model.set_weights(loop_model.get_weights())
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lambda y, p: metrics.emd(y, p), jit_compile=False)
    fit_data = batches.map(lambda b: (b[input_pipeline.PIXELS], b[input_pipeline.DISTRIBUTION]))

    def project(steps: int, bookkeeping: bool) -> float:
        start = time.perf_counter()
        pending, loss = [], None
        for step in range(steps):
            if not bookkeeping:
                loss = train_step(iterator)
                continue
            pending.append((int(progress.global_step.numpy()), train_step(iterator)))
            progress.step.assign(step + 1)
            progress.global_step.assign_add(1)
            global_step = int(progress.global_step.numpy())
            if global_step % config.train.log_every_steps == 0 or step + 1 == steps:
                losses = train._check_finite(pending, "finetune", 0)
                pending = []
                with writer.as_default(step=global_step):
                    tf.summary.scalar("train/loss", losses[-1])
                    tf.summary.scalar("train/learning_rate", float(optimizer.learning_rate.numpy()))
        if loss is not None:
            float(loss.numpy())
        return time.perf_counter() - start

    def fit(steps: int) -> float:
        start = time.perf_counter()
        fit_model.fit(fit_data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - start

    print(_common.machine_line())
    print("warming up (tracing both)...", flush=True)
    project(3, False), project(5, True), fit(3)
    probe = 10 / project(10, False)
    steps = max(20, int(probe * args.seconds))
    fit_setup = _common.median([fit(1) for _ in range(3)])  # a warm fit call of one step: setup + one step
    print(f"{steps} steps per measurement (probe: {probe:.2f} steps/s)", flush=True)
    _common.wait_for_quiet_machine()

    subjects = {
        "keras model.fit": lambda: fit(steps),
        "project step, bare": lambda: project(steps, False),
        "project step + loop bookkeeping": lambda: project(steps, True),
    }
    results: dict[str, list[float]] = {name: [] for name in subjects}
    foreign = []
    for round_index in range(args.rounds):
        order = list(subjects) if round_index % 2 == 0 else list(reversed(subjects))
        for name in order:
            with _common.ForeignCpu() as other:
                seconds = subjects[name]()
            results[name].append(steps / seconds)
            foreign.append(other.share)
            print(f"  round {round_index + 1}: {name:<34}{steps / seconds:7.2f} steps/s  (other processes: {other.share:.0%} of the CPU)", flush=True)

    fit_rate = _common.median(results["keras model.fit"])
    rows = [
        [name, f"{_common.median(v):.2f}", f"{1000 / _common.median(v):.1f}", f"{_common.median(v) / fit_rate:.3f}", " / ".join(f"{x:.2f}" for x in v)]
        for name, v in results.items()
    ]
    print()
    print(_common.table(["training step (MobileNet 0.25, 96 px, batch 32)", "steps/s", "ms/step", "vs fit", "rounds"], rows))
    bare = _common.median(results["project step, bare"])
    booked = _common.median(results["project step + loop bookkeeping"])
    print(f"\nloop bookkeeping: {1000 / booked - 1000 / bare:+.2f} ms a step; a warm fit(steps_per_epoch=1) call: {fit_setup * 1000:.0f} ms "
          f"(= setup + 1 step, {fit_setup * 1000 - 1000 / fit_rate:.0f} ms of setup per fit call)")
    print(f"other processes took up to {max(foreign):.0%} of the CPU during a measurement")
    print(f"goal: project loop (with bookkeeping) >= {GOAL:.2f} of model.fit: "
          f"{'met' if booked / fit_rate >= GOAL else 'NOT met'} ({booked / fit_rate:.3f}; bare {bare / fit_rate:.3f})")


if __name__ == "__main__":
    main()
