"""Steps/s of the project's training loop against a plain `model.fit`, same model, same batches.

    python -m benchmarks.loop_benchmark [--seconds=20]

Both train the same small NIMA (MobileNet alpha 0.25, 96 px, batch 32) with Adam and the
EMD loss on one in-memory batch repeated, on one device. The project's step is measured
bare (`train_step(iterator)`) and with the loop's per-step bookkeeping (the progress
variables it assigns and reads). Goal: at least 0.95 of `model.fit`'s steps/s.
"""

from __future__ import annotations

import argparse
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import metrics, models, train

BATCH, SIZE = 32, 96
GOAL = 0.95


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    config = ml_collections.ConfigDict(
        {"backbone": "mobilenet", "alpha": 0.25, "weights": "none", "dropout": 0.2, "batchnorm_momentum": 0.0}
    )
    return models.build_model(config, SIZE)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32")
    distribution = rng.dirichlet(np.ones(10), BATCH).astype("float32")
    batches = tf.data.Dataset.from_tensors({"pixels": pixels, "distribution": distribution}).repeat()

    strategy = tf.distribute.get_strategy()
    loop_model = _model()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(loop_model.trainable_variables)
    train_step = train._make_train_step(loop_model, optimizer, strategy, BATCH, jit_compile=False)
    iterator = iter(strategy.distribute_datasets_from_function(lambda context: batches))
    progress = train._Progress.create()

    def run(bookkeeping: bool) -> float:
        for _ in range(5):
            train_step(iterator)
        losses = []
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            losses.append(train_step(iterator))
            done += 1
            if bookkeeping:
                progress.step.assign(done)
                progress.global_step.assign_add(1)
                int(progress.global_step.numpy())
        float(losses[-1].numpy())  # wait for the last step
        return done / (time.perf_counter() - start)

    bare, with_bookkeeping = run(False), run(True)

    # One fit call as long as the loop's runs, so that fit's per-call setup is amortised as in training.
    fit_model = _model()
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lambda y, p: metrics.emd(y, p))
    fit_data = batches.map(lambda b: (b["pixels"], b["distribution"]))
    fit_model.fit(fit_data, steps_per_epoch=5, epochs=1, verbose=0)
    steps = max(10, int(bare * args.seconds))
    start = time.perf_counter()
    fit_model.fit(fit_data, steps_per_epoch=steps, epochs=1, verbose=0)
    fit_rate = steps / (time.perf_counter() - start)
    print(f"{'training step':<40}{'steps/s':>9}{'vs fit':>8}")
    for name, value in [("keras model.fit", fit_rate), ("project step, bare", bare), ("project step + loop bookkeeping", with_bookkeeping)]:
        print(f"{name:<40}{value:>9.2f}{value / fit_rate:>8.2f}")
    print(f"goal: project loop >= {GOAL:.2f} of model.fit: {'met' if with_bookkeeping / fit_rate >= GOAL else 'NOT met'} ({with_bookkeeping / fit_rate:.2f})")


if __name__ == "__main__":
    main()
