"""Benchmarks the dataset build at AVA's full scale, on this machine, against a bare loop.

    python -m benchmarks.build_benchmark [--rows=255530] [--distinct_photos=3000] [--config=256]
        [--fractions=16,4,1] [--single_worker_fractions=16,4] [--rounds=3] [--startup_rows=16]
        [--workdir=/tmp/ava_build_benchmark]

Inputs, generated here: --distinct_photos photos of AVA's sizes (sides 333..800 px, JPEG
of ~65 kB with film grain, so that decoding costs what AVA's photos cost), and for each
fraction 1/k an AVA directory of rows/k rows in AVA's own layout whose images are hard
links to those photos (a full-scale layout costs little disk). Every row is valid.

For each layout, the real `python -m beam_pipelines.build` runs in a subprocess with the
README's local flags (FnApiRunner, multi_processing, 2 workers; 1 worker for the scaling
figure), and the benchmark measures wall time, the peak resident memory summed over the
build's whole process tree (psutil, every 0.5 s) and its CPU seconds; then it checks the
accounting from the files alone: the ids in the TFRecords plus those in rejected.jsonl
equal AVA.txt's ids exactly, and stats.json and dataset_info.json equal the TFRecords'
own counts.

Baselines, measured in the same run, as images per CPU-second on one core over the
distinct photos:

- the reference loop, fixed and independent of the project: plain Pillow (draft decode,
  bilinear resize to 256, JPEG at quality 95) and a TFRecord write, so that a slower
  shared normalisation cannot hide in the baseline;
- the project's bare loop: read the bytes, `images.reencode` with the config's policy.

These machines are shared and one figure moves 2x from minute to minute, so the baselines
and the builds are interleaved: `--rounds` rounds, each of which runs both loops and then
every build of the plan; every figure is the median of the rounds, printed with their spread.

A build's fixed cost, whatever its size (three interpreters loading Beam and TFDS, the
graph's stages, the reports), is measured in every round too: a build of --startup_rows
rows. The per-core rate is printed both whole (examples per CPU-second of the process
tree) and without that fixed cost ((rows - startup_rows) / (CPU - the fixed build's CPU)).

Goals: every row accounted for; peak memory under 3 GiB and within 10% across 1/16, 1/4
and all rows; all rows in under 25 minutes, and within 1.15x of the time the reference
loop takes for them on the same cores (start-up included); the builds' per-core rate
without the fixed cost at least 0.8 of the reference loop's; 2 workers at least 1.6x one
worker (marginal rates, same two sizes).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import pathlib
import shutil
import subprocess
import sys
import statistics
import tempfile
import threading
import time

import numpy as np
import psutil

from ava_core import ava_index, images
from ava_core.scaled_layout import AVA_NUM_ROWS, check_accounting, draw_photos, write_layout
from ava_tfds.ava.ava_dataset_builder import Builder

REPO = pathlib.Path(__file__).resolve().parents[1]
GOAL_PEAK_BYTES = 3 << 30
GOAL_MEMORY_SPREAD = 0.10
GOAL_FULL_SCALE_S = 25 * 60
GOAL_PER_CORE = 0.8
GOAL_SCALING = 1.6
GOAL_OF_REFERENCE_TIME = 1.15
SAMPLE_INTERVAL_S = 0.5
POLICIES = {"256": images.ImagePolicy(), "full": images.ImagePolicy(resize_to=None)}
DATAFLOW_VCPUS_PER_WORKER = 4
DATAFLOW_WORKERS = 32
DATAFLOW_USD_PER_VCPU_HOUR = 0.056  # n1-standard batch vCPU price incl. memory, us-central1, approximate
DATAFLOW_STARTUP_MIN = 4.0


@dataclasses.dataclass
class BuildRun:
    rows: int
    workers: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    accounting: list[str]  # problems found; empty when every row is accounted for


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; config {args.config}", flush=True)
    photos = draw_photos(workdir / "photos", args.distinct_photos, seed=0)
    sizes = [p.stat().st_size for p in photos]
    print(f"{len(photos)} distinct photos, mean {np.mean(sizes) / 1e3:.0f} kB", flush=True)
    plan = [(args.rows // f, 2) for f in args.fractions] + [(args.rows // f, 1) for f in args.single_worker_fractions]
    for rows in {rows for rows, _ in plan} | {args.startup_rows}:
        layout = workdir / f"ava_{rows}"
        if not (layout / ava_index.AVA_INDEX_FILE).exists():
            write_layout(layout, rows, photos, seed=rows)
    reference, bare, startup, runs = [], [], [], []
    for round_index in range(args.rounds):
        reference.append(reference_loop_rate(photos, args.loop_seconds))
        bare.append(bare_loop_rate(photos, POLICIES[args.config], args.loop_seconds))
        print(f"round {round_index + 1}: reference loop {reference[-1]:.1f}, bare loop {bare[-1]:.1f} images per CPU-second", flush=True)
        rows = args.startup_rows
        startup.append(run_build(workdir / f"ava_{rows}", workdir / f"out_{rows}_w2", args.config, 2, rows))
        print(f"  fixed cost, a build of {rows} rows: {startup[-1].wall_s:.1f} s, CPU {startup[-1].cpu_s:.1f} s", flush=True)
        for rows, workers in plan:
            run = run_build(workdir / f"ava_{rows}", workdir / f"out_{rows}_w{workers}", args.config, workers, rows)
            runs.append(run)
            print(
                f"  {rows:>7} rows, {workers} worker(s): {run.wall_s:7.1f} s, {run.rows / run.wall_s:6.1f} rows/s, "
                f"CPU {run.cpu_s:7.1f} s ({run.rows / run.cpu_s:.1f} per CPU-s), peak RSS {run.peak_rss_bytes / 2**30:.2f} GiB, "
                f"accounting: {'every row' if not run.accounting else '; '.join(run.accounting)}",
                flush=True,
            )
    report(reference, bare, startup, runs)


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=AVA_NUM_ROWS)
    parser.add_argument("--distinct_photos", type=int, default=3000)
    parser.add_argument("--config", default="256", choices=sorted(POLICIES))
    parser.add_argument("--fractions", type=_ints, default=[16, 4, 1], help="layouts of rows/k rows, 2 workers")
    parser.add_argument("--single_worker_fractions", type=_ints, default=[16, 4], help="the same with 1 worker")
    parser.add_argument("--workdir", default="/tmp/ava_build_benchmark")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both loops and every build")
    parser.add_argument("--loop_seconds", type=float, default=20.0, help="CPU seconds of each loop measurement")
    parser.add_argument("--startup_rows", type=int, default=16, help="rows of the build that measures the fixed cost")
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def bare_loop_rate(photos: list[pathlib.Path], policy: images.ImagePolicy, seconds: float = 20.0) -> float:
    """Images per CPU-second of read + reencode in this process, over the photos in order."""
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        images.reencode(photos[done % len(photos)].read_bytes(), policy)
        done += 1
    return done / (time.process_time() - start)


def reference_loop_rate(photos: list[pathlib.Path], seconds: float = 20.0, side: int = 256) -> float:
    """Images per CPU-second of the fixed reference loop: read, Pillow draft decode, bilinear
    resize to side x side, JPEG at quality 95, TFRecord write (in this process)."""
    import tensorflow as tf
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch, tf.io.TFRecordWriter(os.path.join(scratch, "reference.tfrecord")) as writer:
        done, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            with Image.open(io.BytesIO(photos[done % len(photos)].read_bytes())) as image:
                image.draft("RGB", (side, side))
                resized = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
            encoded = io.BytesIO()
            resized.save(encoded, format="JPEG", quality=95)
            writer.write(encoded.getvalue())
            done += 1
        return done / (time.process_time() - start)


class _TreeSampler(threading.Thread):
    """Peak RSS summed over a process and its descendants, and their CPU seconds."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._halt = threading.Event()
        self.peak_rss = 0
        self._cpu: dict[tuple[int, float], float] = {}

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_INTERVAL_S):
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = 0
            for process in processes:
                try:
                    with process.oneshot():
                        rss += process.memory_info().rss
                        times = process.cpu_times()
                        self._cpu[(process.pid, process.create_time())] = times.user + times.system
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return sum(self._cpu.values())


def run_build(layout: pathlib.Path, out: pathlib.Path, config: str, workers: int, rows: int) -> BuildRun:
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "beam_pipelines.build", f"--config={config}", f"--ava_dir={layout}", f"--output_dir={out}",
        f"--direct_num_workers={workers}",
    ]
    log = out.with_suffix(".log")
    with open(log, "wb") as log_file:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        sampler = _TreeSampler(process.pid)
        sampler.start()
        code = process.wait()
        wall = time.perf_counter() - start
        cpu = sampler.stop()
    if code != 0:
        raise SystemExit(f"the build of {layout} failed (exit {code}); its output is in {log}")
    accounting = check_accounting(layout, out / "ava" / config / str(Builder.VERSION))
    return BuildRun(rows, workers, wall, cpu, sampler.peak_rss, accounting)


def _median_spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} (rounds: {', '.join(f'{v:{fmt}}' for v in values)})"


def report(reference: list[float], bare: list[float], startup: list[BuildRun], runs: list[BuildRun]) -> None:
    """Medians over the rounds of every figure, with the rounds' values as the spread."""
    by_key: dict[tuple[int, int], list[BuildRun]] = {}
    for run in runs:
        by_key.setdefault((run.rows, run.workers), []).append(run)
    median = lambda key, measure: statistics.median(measure(r) for r in by_key[key])
    two = sorted(rows for rows, workers in by_key if workers == 2)
    one = sorted(rows for rows, workers in by_key if workers == 1)
    reference_rate, bare_rate = statistics.median(reference), statistics.median(bare)
    print("\n| measure | value (median of rounds) | goal | verdict |\n| --- | --- | --- | --- |")

    def row(measure, value, goal="", ok=None):
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        print(f"| {measure} | {value} | {goal} | {verdict} |")

    row("reference loop (Pillow draft, bilinear 256, JPEG 95, TFRecord), 1 core", _median_spread(reference) + " images per CPU-s")
    row("project's bare loop (read + images.reencode), 1 core", _median_spread(bare) + f" images per CPU-s = {bare_rate / reference_rate:.2f} of the reference")
    fixed_rows, fixed_cpu = startup[0].rows, statistics.median(r.cpu_s for r in startup)
    row(f"fixed cost: a build of {fixed_rows} rows, 2 workers",
        _median_spread([r.cpu_s for r in startup]) + " CPU-s, " + _median_spread([r.wall_s for r in startup]) + " s")
    row("rows accounted for", ", ".join(f"{r.rows} ({r.workers}w): {'all' if not r.accounting else 'NO'}" for r in runs),
        "every row", all(not r.accounting for r in runs))
    peaks = [median((rows, 2), lambda r: r.peak_rss_bytes) for rows in two]
    row("peak RSS, process tree, 2 workers", " / ".join(f"{p / 2**30:.2f} GiB" for p in peaks) + f" at {', '.join(map(str, two))} rows",
        "< 3 GiB", max(peaks) < GOAL_PEAK_BYTES)
    spread = max(peaks) / min(peaks) - 1
    row("memory growth, smallest to largest", f"{spread:+.1%}", "within 10%", spread <= GOAL_MEMORY_SPREAD)
    largest = two[-1]
    walls = [r.wall_s for r in by_key[(largest, 2)]]
    full = largest >= AVA_NUM_ROWS
    row(f"wall time, {largest} rows, 2 workers", _median_spread([w / 60 for w in walls], ".1f") + " min",
        "< 25 min" if full else "", statistics.median(walls) < GOAL_FULL_SCALE_S if full else None)
    reference_wall = largest / (reference_rate * 2)
    ratio = statistics.median(walls) / reference_wall
    row(f"wall time against the reference loop on 2 cores ({reference_wall / 60:.1f} min for {largest} rows)",
        f"{ratio:.2f}x", f"<= {GOAL_OF_REFERENCE_TIME}x at full scale" if full else "",
        ratio <= GOAL_OF_REFERENCE_TIME if full else None)
    for workers, group in ((2, two), (1, one)):
        for rows in group:
            whole = [r.rows / r.cpu_s for r in by_key[(rows, workers)]]
            row(f"build, {workers} worker(s), {rows} rows: per-core rate, fixed cost included",
                _median_spread(whole) + f" images per CPU-s = {statistics.median(whole) / reference_rate:.2f} of the reference loop")
            beyond = [(r.rows - fixed_rows) / (r.cpu_s - fixed_cpu) for r in by_key[(rows, workers)]]
            of_reference = statistics.median(beyond) / reference_rate
            row(f"build, {workers} worker(s), {rows} rows: per-core rate without the fixed cost",
                _median_spread(beyond) + f" images per CPU-s = {of_reference:.2f} of the reference loop",
                f">= {GOAL_PER_CORE}" if workers == 2 else "", of_reference >= GOAL_PER_CORE if workers == 2 else None)
        if len(group) >= 2:
            small, big = group[0], group[-1]
            marginal = (big - small) / (median((big, workers), lambda r: r.cpu_s) - median((small, workers), lambda r: r.cpu_s))
            row(f"build, {workers} worker(s): marginal per-core rate ({small} -> {big} rows, start-up excluded)",
                f"{marginal:.1f} images per CPU-s = {marginal / reference_rate:.2f} of the reference loop")
    common = sorted(set(one) & set(two))
    if len(common) >= 2:
        small, big = common[0], common[-1]
        marginal = lambda w: (big - small) / (median((big, w), lambda r: r.wall_s) - median((small, w), lambda r: r.wall_s))
        scaling = marginal(2) / marginal(1)
        row(f"scaling, 2 workers / 1 ({small} -> {big} rows, marginal wall rate)",
            f"{marginal(2):.0f} / {marginal(1):.0f} rows/s = {scaling:.2f}x", ">= 1.6x", scaling >= GOAL_SCALING)
    if len(two) >= 2:
        per_vcpu = (two[-1] - two[0]) / (median((two[-1], 2), lambda r: r.cpu_s) - median((two[0], 2), lambda r: r.cpu_s))
        vcpus = DATAFLOW_WORKERS * DATAFLOW_VCPUS_PER_WORKER
        minutes = AVA_NUM_ROWS / (per_vcpu * vcpus) / 60
        cost = AVA_NUM_ROWS / per_vcpu / 3600 * DATAFLOW_USD_PER_VCPU_HOUR
        row("projection, all of AVA on Dataflow",
            f"{DATAFLOW_WORKERS} workers x {DATAFLOW_VCPUS_PER_WORKER} vCPUs at {per_vcpu:.0f} images per vCPU-second: "
            f"{minutes:.1f} min of processing + ~{DATAFLOW_STARTUP_MIN:.0f} min start-up; ~{AVA_NUM_ROWS / per_vcpu / 3600:.2f} vCPU-hours, "
            f"~${cost:.2f} of vCPU time (GCS reads of ~32 GB excluded)")


if __name__ == "__main__":
    main()
