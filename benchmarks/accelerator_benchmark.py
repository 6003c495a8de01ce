"""Training images/s on this machine's accelerator (or its CPU), in one run: the model alone,
the input alone and the two together, for the default strategy and MirroredStrategy.

    # one GPU (the issue's setting: MobileNet v1 at 224, mixed precision, XLA, batches 128, 256, 512)
    python -m benchmarks.accelerator_benchmark 2>&1 | tee accelerator_benchmark.log | \
        grep -E '^(machine|data|  batch|[|]|batch|best)'

    # CPU, tiny settings: a few minutes on 2 cores
    python -m benchmarks.accelerator_benchmark --alpha=0.25 --image_size=96 --batch_sizes=16 \
        --steps=40 --steps_per_loop=5 --no-mixed_precision --no-jit_compile

On CPU, turn XLA off (its CPU kernels ran this model's training step about 5x slower) and
mixed precision off (CPUs have no fast float16), and time 40 steps or more: on a shared
2-core machine, windows of 4 calls moved the ceiling by half its value from run to run.
The `wall s` column (compilation included) is there to plan a run on a borrowed GPU.

Data, generated here (the accelerator machine has no network): photos of AVA's sizes
(`scaled_layout.draw_photos`, sides 333..800 px), an AVA directory of enough rows for the
longest measurement whose images are hard links to them (`scaled_layout.write_layout`),
built into `ava/256` (photos stored at 256x256) by the real `python -m beam_pipelines.build
--config=256`, under --workdir and reused by later runs with the same number of rows.

For each batch size, and for each strategy (the default one, and MirroredStrategy on the
one device) where it matters:
- model only, the ceiling: the project's training step (`NimaTask.begin_phase` run by
  `loop.multi_step`, --steps_per_loop steps a call) on batches of the built data already
  on the device (a few, cycled: see `_DeviceBatches`), timed before and after the
  end-to-end run and the faster kept (a shared or warming machine then lowers the ratio
  to it, never raises it);
- input only (once per batch size; the strategy does not enter): batches out of
  `input_pipeline.train_dataset` on the host, as the task reads them;
- end to end: `loop.run` with the `NimaTask` and `trainer.main`'s settings
  (`train.loop_settings`) over the built TFRecords, timed from its first log line of the
  epoch to its last, so tracing, XLA compilation, validation and checkpoints are left out.
Every figure is of the fine-tune phase (every layer trains), the costlier of the two, after
one call of warm-up, over --steps steps. The ratios printed: end to end / model only,
input / model only, and mirrored / default.

Goal (issue 10, one H100): end to end at least 5,000 images/s for MobileNet v1 at 224 and
at least 0.9 of the model-only ceiling of the same run; MirroredStrategy within 5% of the
default strategy.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import tempfile
import time
from typing import Callable

import keras
import ml_collections
import tensorflow as tf

from ava_core import scaled_layout
from ava_tfds.ava import ava_dataset_builder
from benchmarks import common
from configs import nima_mobilenet
from trainer import input_pipeline, loop, task, train

GOAL_IMAGES_PER_SECOND = 5000
GOAL_OF_CEILING = 0.9
GOAL_MIRRORED_SPREAD = 0.05
ROWS_MARGIN = 1.05  # the validation split is chosen by hashing ids: its size varies a little
STRATEGIES = ("default", "mirrored")
CEILING_BATCHES = 8


@dataclasses.dataclass
class Figures:
    batch_size: int
    strategy: str
    model_only: float  # images/s
    end_to_end: float
    input_only: float
    seconds: float  # wall time of this row's measurements, compilation included


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    device = _device()
    print(_machine(device, args), flush=True)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    rows = args.rows or rows_needed(max(args.batch_sizes), args.steps_per_loop + args.steps)
    started = time.perf_counter()
    data_dir = common.ava_256_dataset(args.workdir, rows, args.distinct_photos)
    print(f"data: ava/256, {rows} rows of {args.distinct_photos} distinct AVA-sized photos, ready in "
          f"{time.perf_counter() - started:.0f} s ({data_dir})", flush=True)
    results = []
    for batch_size in args.batch_sizes:
        config = benchmark_config(args, data_dir, batch_size)
        started = time.perf_counter()
        input_rate = input_only(config, args.steps_per_loop, args.steps)
        for name in args.strategies:
            strategy = tf.distribute.get_strategy() if name == "default" else tf.distribute.MirroredStrategy([device])
            keras.utils.set_random_seed(config.train.seed)
            nima = task.NimaTask(config, strategy)
            model_only = model_only_timer(nima, config, device, args.steps_per_loop)
            before = model_only(args.steps)
            end_rate = end_to_end(nima, config, strategy, args.steps_per_loop + args.steps, args.workdir)
            model_rate = max(before, model_only(args.steps))
            del nima, model_only
            gc.collect()
            results.append(Figures(batch_size, name, model_rate, end_rate, input_rate, time.perf_counter() - started))
            print(f"  batch {batch_size}, {name}: model only {model_rate:.0f}, end to end {end_rate:.0f}, "
                  f"input {input_rate:.0f} images/s ({results[-1].seconds:.0f} s)", flush=True)
            started = time.perf_counter()
    report(results)


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNet v1 width multiplier")
    parser.add_argument("--image_size", type=int, default=224, help="model input, a window of the 256 px photos")
    parser.add_argument("--batch_sizes", type=_ints, default=[128, 256, 512], help="global batch sizes, comma separated")
    parser.add_argument("--steps", type=int, default=100, help="timed steps of each measurement, after one call of warm-up")
    parser.add_argument("--steps_per_loop", type=int, default=50, help="--config.train.steps_per_loop")
    parser.add_argument("--strategies", type=_names, default=list(STRATEGIES), help="of: " + ",".join(STRATEGIES))
    parser.add_argument("--mixed_precision", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--jit_compile", action=argparse.BooleanOptionalAction, default=True, help="XLA")
    parser.add_argument("--rows", type=int, default=0, help="AVA rows to build; 0: enough for the largest batch")
    parser.add_argument("--distinct_photos", type=int, default=500)
    parser.add_argument("--workdir", default="/tmp/nima_accelerator_benchmark")
    args = parser.parse_args(argv)
    if args.steps % args.steps_per_loop:
        parser.error(f"--steps={args.steps} is timed in whole calls: give a multiple of --steps_per_loop={args.steps_per_loop}")
    return args


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _names(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown strategies {unknown}: choose of {', '.join(STRATEGIES)}")
    return names


def rows_needed(batch_size: int, steps: int) -> int:
    """AVA rows whose training split holds `steps` batches: the test list and the
    validation slice take their shares first."""
    training_share = (1 - scaled_layout.AVA_TEST_FRACTION) * (1 - ava_dataset_builder.VALIDATION_FRACTION)
    return math.ceil(batch_size * steps / training_share * ROWS_MARGIN)


def benchmark_config(args, data_dir: str, batch_size: int) -> ml_collections.ConfigDict:
    """The paper-scale config on the built data, one fine-tune epoch as long as a measurement."""
    config = nima_mobilenet.get_config()
    config.dataset.name = "ava/256"
    config.dataset.data_dir = data_dir
    config.dataset.eval_split = f"validation[:{batch_size}]"  # validation is not timed: keep it short
    config.input.image_size = args.image_size
    config.model.alpha = args.alpha
    config.model.weights = "none"  # no network on the accelerator machine; speed does not depend on them
    config.train.global_batch_size = batch_size
    config.train.eval_batch_size = batch_size
    config.train.mixed_precision = args.mixed_precision
    config.train.jit_compile = args.jit_compile
    config.train.steps_per_loop = args.steps_per_loop
    config.train.log_every_steps = args.steps_per_loop  # a log line, and so a clock reading, every call
    config.train.max_steps_per_epoch = args.steps_per_loop + args.steps
    config.head.epochs = 0
    config.finetune.epochs = 1
    return config


def input_only(config: ml_collections.ConfigDict, warmup: int, steps: int) -> float:
    """Images/s of the training input on the host: `steps` batches after `warmup` batches
    (the shuffle buffer fills and tf.data's autotuning settles)."""
    batches = iter(input_pipeline.train_dataset(config, tf.distribute.InputContext(), epoch=0).repeat())
    for _ in range(warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * config.train.global_batch_size / (time.perf_counter() - start)


def model_only_timer(nima: task.NimaTask, config, device: str, steps_per_loop: int) -> Callable[[int], float]:
    """The ceiling: a function of the steps to time that returns the images/s of the real
    fine-tune step on batches kept on `device`. Traces and compiles the step here."""
    source = iter(input_pipeline.train_dataset(config, tf.distribute.InputContext(), epoch=0).repeat())
    batches = _DeviceBatches([next(source) for _ in range(CEILING_BATCHES)], device)
    run_steps = loop.multi_step(nima.begin_phase(_finetune(nima)))
    num_steps = tf.constant(steps_per_loop, tf.int32)
    run_steps(batches, num_steps).numpy()

    def images_per_second(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps // steps_per_loop):
            losses = run_steps(batches, num_steps)
        losses.numpy()  # the last call's losses wait for every step before them
        return steps * config.train.global_batch_size / (time.perf_counter() - start)

    return images_per_second


def end_to_end(nima: task.NimaTask, config, strategy: tf.distribute.Strategy, epoch_steps: int, workdir: str) -> float:
    """Images/s of `loop.run` training the NIMA task on the built TFRecords, between its
    first and last log line of the epoch."""
    if nima.steps_per_epoch < epoch_steps:
        raise SystemExit(
            f"the built training split makes {nima.steps_per_epoch} batches of {config.train.global_batch_size}, "
            f"fewer than the {epoch_steps} to time: give a larger --rows"
        )
    clock = _LogClock()
    with tempfile.TemporaryDirectory(dir=workdir) as run_dir:
        loop.run(nima, run_dir, strategy, train.loop_settings(config), [clock])
    return clock.images_per_second(config.train.global_batch_size)


class _DeviceBatches:
    """An iterator over a few batches stacked on the device, in turn, forever. The multi-step
    function traces `next` once: every step then advances a counter and slices the next
    batch on the device, with no input pipeline and no copy from the host. Several batches,
    not one: on CPU, training on one batch over and over ran slower than on the pipeline's
    changing batches (median 76 against 103 images/s, same step), so it is no ceiling."""

    def __init__(self, batches: list, device: str):
        with tf.device(device):
            self._stacked = tf.nest.map_structure(lambda *parts: tf.stack(parts), *batches)
        self._count, self._size = tf.Variable(0, dtype=tf.int64, trainable=False), len(batches)

    def __iter__(self):
        return self

    def __next__(self):
        index = self._count.assign_add(1) % self._size
        return tf.nest.map_structure(lambda stacked: tf.gather(stacked, index), self._stacked)


class _LogClock(loop.Action):
    """Time and global step of each log line. The loop logs after reading the losses back,
    so each reading waits for the steps before it."""

    def __init__(self):
        self.readings: list[tuple[float, int]] = []

    def on_log(self, global_step: int, loss: float, learning_rate: float) -> None:
        self.readings.append((time.perf_counter(), global_step))

    def images_per_second(self, batch_size: int) -> float:
        (start, first_step), (end, last_step) = self.readings[0], self.readings[-1]
        return (last_step - first_step) * batch_size / (end - start)


def _finetune(nima: task.NimaTask) -> loop.Phase:
    return next(phase for phase in nima.phases if phase.name == task.FINETUNE)


def _device() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return (gpus or tf.config.list_logical_devices("CPU"))[0].name


def _machine(device: str, args) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "no GPU, CPU only"
    return (
        f"machine: {name} ({device}), {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}; MobileNet v1 alpha "
        f"{args.alpha} at {args.image_size} px, mixed precision {'on' if args.mixed_precision else 'off'}, XLA "
        f"{'on' if args.jit_compile else 'off'}, {args.steps_per_loop} steps per call, {args.steps} timed steps"
    )


def report(results: list[Figures]) -> None:
    print("\n| batch | strategy | model only, images/s | end to end, images/s | end to end / model only "
          "| input only, images/s | input / model only | wall s |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r.batch_size} | {r.strategy} | {r.model_only:.0f} | {r.end_to_end:.0f} | {r.end_to_end / r.model_only:.2f} "
              f"| {r.input_only:.0f} | {r.input_only / r.model_only:.2f} | {r.seconds:.0f} |")
    by_key = {(r.batch_size, r.strategy): r for r in results}
    for batch_size in sorted({r.batch_size for r in results}):
        if (batch_size, "default") in by_key and (batch_size, "mirrored") in by_key:
            default, mirrored = by_key[(batch_size, "default")], by_key[(batch_size, "mirrored")]
            spread = mirrored.end_to_end / default.end_to_end
            print(f"batch {batch_size}: mirrored / default: end to end {spread:.2f}, model only "
                  f"{mirrored.model_only / default.model_only:.2f} (goal: end to end within {GOAL_MIRRORED_SPREAD:.0%}: "
                  f"{'met' if abs(spread - 1) <= GOAL_MIRRORED_SPREAD else 'NOT met'})")
    best = max(results, key=lambda r: r.end_to_end)
    print(f"best end to end: {best.end_to_end:.0f} images/s (batch {best.batch_size}, {best.strategy}); goal >= "
          f"{GOAL_IMAGES_PER_SECOND}: {'met' if best.end_to_end >= GOAL_IMAGES_PER_SECOND else 'NOT met'}; "
          f"{best.end_to_end / best.model_only:.2f} of its model-only ceiling, goal >= {GOAL_OF_CEILING}: "
          f"{'met' if best.end_to_end / best.model_only >= GOAL_OF_CEILING else 'NOT met'}")


if __name__ == "__main__":
    main()
