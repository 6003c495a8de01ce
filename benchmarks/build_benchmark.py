"""Benchmarks the Beam build of `ava/256` against a bare Python loop doing the same work.

    python -m benchmarks.build_benchmark [--num_images=300] [--growth=4] [--workers=2]

Everything it measures runs on this machine, in this run, on inputs it generates with
`beam_pipelines.sample.write_sample` into a temporary directory:

a. Per-core throughput: the real `python -m beam_pipelines.build --config=256 ...
   --runner=FnApiRunner --direct_running_mode=multi_processing` in a subprocess, against a
   bare loop over the same files (read the bytes, `images.reencode` with the 256 policy).
   Each build is timed at three sizes (tiny, N, growth*N), and wall = a + b * examples is
   fitted per worker count: `a` is the fixed startup cost, 1/b the marginal rate. Both the
   raw ratio (startup included) and the marginal ratio are printed.
b. Scaling: the marginal rate with --workers workers over the rate with 1.
c. Growth: N vs growth*N: wall-time ratio and peak RSS summed over the build's process
   tree (psutil, every 0.2 s), and the memory growth per 1000 images.
d. Parsing a synthetic AVA.txt of 255,530 rows with `ava_index.parse_index`.
e. Projection to all of AVA, here and on Dataflow, from the measured marginal rates.

Goals (from the project's brief): (a) marginal per-core rate >= 80% of the bare loop's;
(b) >= 1.6x with 2 workers; (c) time ratio <= ~4x for 4x the images, memory flat;
(d) < 3 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

import numpy as np
import psutil

from ava_tfds.ava import ava_dataset_builder as ava_tfds_builder
from beam_pipelines import ava_index, images, sample, transforms
from beam_pipelines.rejections import RejectedInput

REPO = pathlib.Path(__file__).resolve().parents[1]
AVA_NUM_ROWS = 255_530
AVA_MEAN_JPEG_BYTES = 32e9 / AVA_NUM_ROWS  # ~32 GB of photos as distributed: an estimate, not measured here
POLICY_256 = images.ImagePolicy(resize_to=(256, 256))
GOAL_PER_CORE_RATIO = 0.80
GOAL_SCALING = 1.6
GOAL_GROWTH_TIME = 4.0
GOAL_PARSE_S = 3.0
SAMPLE_INTERVAL_S = 0.2


# ---------------------------------------------------------------------------------------
# Inputs


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str
    path: pathlib.Path
    num_images: int  # the ordinary photos asked for
    num_good: int  # examples the build must write (ordinary + unusual-but-valid planted)
    image_bytes: int  # total size of images/


def make_sample(root: pathlib.Path, name: str, num_images: int, seed: int, min_side: int, max_side: int) -> Sample:
    path = root / name
    start = time.perf_counter()
    for candidate_seed in range(seed, seed + 1000):  # TFDS refuses to write an empty split: take a seed that fills all three
        shutil.rmtree(path, ignore_errors=True)
        manifest = sample.write_sample(str(path), num_images, seed=candidate_seed, min_side=min_side, max_side=max_side)
        test_ids = set(manifest.test_ids)
        splits = {
            ava_index.assign_split(i, i in test_ids, ava_tfds_builder.VALIDATION_FRACTION) for i in manifest.good_ids
        }
        if len(splits) == len(ava_index.SPLITS):
            break
    size = sum(f.stat().st_size for f in (path / ava_index.IMAGES_DIR).iterdir())
    print(
        f"  sample {name:>5}: {num_images} photos + planted inputs, {len(manifest.good_ids)} good, "
        f"{size / 1e6:.1f} MB of images (mean {size / max(1, len(manifest.good_ids)) / 1e3:.0f} kB), "
        f"written in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    return Sample(name, path, num_images, len(manifest.good_ids), size)


def write_synthetic_index(path: pathlib.Path, num_rows: int, seed: int = 0) -> None:
    """An AVA.txt of AVA's size and shape: ~210 votes a row, two tags, a challenge id."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(sample.MAX_IMAGE_ID, size=num_rows, replace=False) + 1
    shape, scale = (sample.MEAN_VOTES / sample.SD_VOTES) ** 2, sample.SD_VOTES**2 / sample.MEAN_VOTES
    totals = np.clip(np.round(rng.gamma(shape, scale, num_rows)), sample.MIN_VOTES, sample.MAX_VOTES).astype(int)
    centres = rng.normal(5.4, 0.73, num_rows)[:, None]
    spreads = rng.uniform(1.1, 1.7, num_rows)[:, None]
    weights = np.exp(-0.5 * ((np.arange(1, 11)[None, :] - centres) / spreads) ** 2)
    counts = rng.multinomial(totals, weights / weights.sum(axis=1, keepdims=True))
    tags = rng.integers(0, 67, size=(num_rows, 2))
    challenges = rng.integers(1, 1500, size=num_rows)
    table = np.column_stack([np.arange(1, num_rows + 1), ids, counts, tags, challenges])
    path.write_text("".join(" ".join(map(str, row)) + "\n" for row in table.tolist()))


# ---------------------------------------------------------------------------------------
# Measurements


@dataclasses.dataclass(frozen=True)
class BuildRun:
    sample: str
    workers: int
    examples: int
    wall_s: float
    peak_rss_bytes: int
    cpu_s: float  # user + system over the process tree (sampled; a process that lives < 0.2 s may be missed)


class _TreeSampler(threading.Thread):
    """Samples RSS (summed over a process and all its descendants) and CPU time per pid."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._halt = threading.Event()
        self.peak_rss = 0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, create_time) -> latest cpu seconds

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(SAMPLE_INTERVAL_S)

    def _sample(self) -> None:
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    self._cpu[(proc.pid, proc.create_time())] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())


def run_build(ava: Sample, workers: int, root: pathlib.Path) -> BuildRun:
    """Runs the real build in a subprocess and measures it."""
    out_dir = root / f"out_{ava.name}_w{workers}"
    shutil.rmtree(out_dir, ignore_errors=True)
    log_path = root / f"log_{ava.name}_w{workers}.txt"
    command = [
        sys.executable, "-m", "beam_pipelines.build", "--config=256",
        f"--ava_dir={ava.path}", f"--output_dir={out_dir}",
        "--runner=FnApiRunner", f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing",
    ]
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        sampler = _TreeSampler(process.pid)
        sampler.start()
        code = process.wait()
        wall = time.perf_counter() - start
        sampler.stop()
    if code != 0:
        raise RuntimeError(f"build failed (exit {code}): {' '.join(command)}; see {log_path}")
    stats_path = next(out_dir.glob(f"ava/256/*/{transforms.STATS_FILE}"))
    examples = sum(json.loads(stats_path.read_text())["examples"].values())
    if examples != ava.num_good:
        raise RuntimeError(f"build of {ava.name} wrote {examples} examples, the sample has {ava.num_good} good ids")
    shutil.rmtree(out_dir, ignore_errors=True)
    run = BuildRun(ava.name, workers, examples, wall, sampler.peak_rss, sampler.cpu_s)
    print(
        f"  build {ava.name:>5} with {workers} worker(s): {examples:5d} examples in {wall:6.1f} s, "
        f"peak RSS {run.peak_rss_bytes / 2**20:6.0f} MiB, CPU {run.cpu_s:6.1f} s",
        flush=True,
    )
    return run


@dataclasses.dataclass(frozen=True)
class LoopRun:
    examples: int
    wall_s: float

    @property
    def rate(self) -> float:
        return self.examples / self.wall_s


def bare_loop(ava: Sample) -> LoopRun:
    """The build's per-image work and nothing else: read each file, reencode it at 256x256."""
    paths = sorted((ava.path / ava_index.IMAGES_DIR).iterdir())
    examples = 0
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as file:
            data = file.read()
        try:
            images.reencode(data, POLICY_256)
        except RejectedInput:
            continue
        examples += 1
    return LoopRun(examples, time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class Fit:
    """wall_s = startup_s + s_per_image * examples, least squares over the runs."""

    startup_s: float
    s_per_image: float
    max_residual_s: float

    @property
    def marginal_rate(self) -> float:
        return 1.0 / self.s_per_image

    @classmethod
    def of(cls, runs: list[BuildRun]) -> "Fit":
        x = np.array([run.examples for run in runs], dtype=float)
        y = np.array([run.wall_s for run in runs])
        slope, intercept = np.polyfit(x, y, 1)
        return cls(float(intercept), float(slope), float(np.max(np.abs(y - (intercept + slope * x)))))


def time_parse(root: pathlib.Path, num_rows: int) -> tuple[float, float, int]:
    """(seconds to read and parse, seconds to parse only, rows parsed) for a synthetic AVA.txt."""
    path = root / "AVA_full_size.txt"
    write_synthetic_index(path, num_rows)
    start = time.perf_counter()
    with open(path) as file:
        rows = list(ava_index.parse_index(file))
    read_and_parse = time.perf_counter() - start
    text = path.read_text().splitlines()
    start = time.perf_counter()
    rows_again = list(ava_index.parse_index(text))
    parse_only = time.perf_counter() - start
    good = sum(isinstance(row, ava_index.AvaRow) for row in rows)
    assert len(rows) == len(rows_again) == num_rows, (len(rows), num_rows)
    return read_and_parse, parse_only, good


# ---------------------------------------------------------------------------------------
# Report


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=300, help="N: photos in the middle-sized sample")
    parser.add_argument("--growth", type=int, default=4, help="the large sample has growth*N photos")
    parser.add_argument("--tiny_images", type=int, default=10, help="photos in the tiny sample (startup cost)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the scaled build (compared with 1)")
    parser.add_argument("--min_side", type=int, default=400)
    parser.add_argument("--max_side", type=int, default=800)
    parser.add_argument("--index_rows", type=int, default=AVA_NUM_ROWS, help="rows of the synthetic AVA.txt to parse")
    parser.add_argument("--dataflow_workers", type=int, default=32)
    parser.add_argument("--dataflow_vcpus", type=int, default=4, help="vCPUs per Dataflow worker (n1-standard-4)")
    parser.add_argument("--work_dir", help="keep inputs and logs here instead of a deleted temp dir")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be >= 2 (it is compared with 1)")

    started = datetime.datetime.now()
    root = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="ava_build_benchmark_"))
    root.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count()
    print(
        f"build benchmark, {started:%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
        f"{cores} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}; "
        f"work dir {root}",
        flush=True,
    )
    try:
        _run(args, root, cores)
    finally:
        if not args.work_dir:
            shutil.rmtree(root, ignore_errors=True)
    print(f"total benchmark time {_duration((datetime.datetime.now() - started).total_seconds())}")


def _run(args: argparse.Namespace, root: pathlib.Path, cores: int) -> None:
    n_small, n_large = args.num_images, args.growth * args.num_images
    print("inputs (beam_pipelines.sample.write_sample):", flush=True)
    tiny = make_sample(root, "tiny", args.tiny_images, 11, args.min_side, args.max_side)
    small = make_sample(root, "N", n_small, 12, args.min_side, args.max_side)
    large = make_sample(root, f"{args.growth}N", n_large, 13, args.min_side, args.max_side)

    print(f"(d) parsing a synthetic AVA.txt of {args.index_rows} rows:", flush=True)
    parse_s, parse_only_s, parsed_good = time_parse(root, args.index_rows)
    print(f"  read+parse {parse_s:.2f} s, parse only {parse_only_s:.2f} s, {parsed_good} rows kept", flush=True)

    print("bare loop (read bytes + images.reencode 256x256, 1 core):", flush=True)
    bare_loop(tiny)  # warm up imports and caches
    loops = [bare_loop(large) for _ in range(2)]
    for loop in loops:
        print(f"  {loop.examples} examples in {loop.wall_s:.2f} s = {loop.rate:.1f} images/s", flush=True)
    bare_rate = statistics.mean(loop.rate for loop in loops)

    print("Beam builds (python -m beam_pipelines.build --config=256 --runner=FnApiRunner, multi_processing):", flush=True)
    runs: dict[int, dict[str, BuildRun]] = {}
    for workers in (1, args.workers):
        runs[workers] = {s.name: run_build(s, workers, root) for s in (tiny, small, large)}
    fits = {workers: Fit.of(list(by_name.values())) for workers, by_name in runs.items()}

    w = args.workers
    one, many = fits[1], fits[w]
    print()
    print("fits: wall = startup + examples / marginal rate")
    for workers, fit in fits.items():
        print(
            f"  {workers} worker(s): startup {fit.startup_s:.1f} s, marginal {fit.marginal_rate:.1f} images/s "
            f"({fit.marginal_rate / workers:.1f} per core), worst residual {fit.max_residual_s:.2f} s"
        )

    # (a) per-core throughput
    rows = []

    def add(label: str, value: str, goal: str = "", verdict: str = "") -> None:
        rows.append((label, value, goal, verdict))

    add("bare loop, 1 core", f"{bare_rate:.1f} img/s")
    for workers in (1, w):
        fit, big = fits[workers], runs[workers][large.name]
        raw = big.examples / big.wall_s / workers
        marginal = fit.marginal_rate / workers
        add(f"(a) build {workers}w raw, {big.examples} img", f"{raw:.1f} img/s/core = {raw / bare_rate:.0%}")
        add(
            f"(a) build {workers}w marginal",
            f"{marginal:.1f} img/s/core = {marginal / bare_rate:.0%}",
            f">= {GOAL_PER_CORE_RATIO:.0%}",
            _verdict(marginal / bare_rate >= GOAL_PER_CORE_RATIO),
        )
        add(f"    {workers}w startup (fit)", f"{fit.startup_s:.1f} s")
        add(
            f"    {workers}w CPU per image",
            f"{(big.cpu_s - runs[workers][tiny.name].cpu_s) / (big.examples - runs[workers][tiny.name].examples) * 1e3:.1f} ms"
            f" (bare loop {1e3 / bare_rate:.1f} ms)",
        )
    # (b) scaling
    scaling = many.marginal_rate / one.marginal_rate
    raw_scaling = runs[1][large.name].wall_s / runs[w][large.name].wall_s
    add(f"(b) scaling {w}w/1w marginal", f"{scaling:.2f}x", f">= {GOAL_SCALING}x", _verdict(scaling >= GOAL_SCALING))
    add(f"    scaling {w}w/1w raw, {runs[w][large.name].examples} img", f"{raw_scaling:.2f}x")
    # (c) growth
    small_run, large_run = runs[w][small.name], runs[w][large.name]
    time_ratio = large_run.wall_s / small_run.wall_s
    marginal_ratio = (large_run.wall_s - many.startup_s) / max(1e-9, small_run.wall_s - many.startup_s)
    add(
        f"(c) time {args.growth}N/N, {w}w",
        f"{time_ratio:.2f}x raw, {marginal_ratio:.2f}x w/o startup",
        f"<= ~{GOAL_GROWTH_TIME:.0f}x",
        _verdict(time_ratio <= GOAL_GROWTH_TIME * 1.05),
    )
    for workers in (1, w):
        by_name = runs[workers]
        grow = (by_name[large.name].peak_rss_bytes - by_name[small.name].peak_rss_bytes) / (
            by_name[large.name].examples - by_name[small.name].examples
        ) * 1000
        flat = grow < 0.05 * by_name[small.name].peak_rss_bytes
        add(
            f"(c) peak RSS {workers}w tiny/N/{args.growth}N",
            "/".join(f"{by_name[s.name].peak_rss_bytes / 2**20:.0f}" for s in (tiny, small, large))
            + f" MiB; {grow / 2**20:+.1f} MiB per 1000 img",
            "flat",
            _verdict(flat),
        )
    add("    photo bytes N / 4N", f"{small.image_bytes / 2**20:.1f} / {large.image_bytes / 2**20:.1f} MiB")
    # (d) parse
    add(
        f"(d) parse AVA.txt {args.index_rows} rows",
        f"{parse_s:.2f} s (parse only {parse_only_s:.2f} s)",
        f"< {GOAL_PARSE_S:.0f} s",
        _verdict(parse_s < GOAL_PARSE_S),
    )
    # (e) projection
    per_core = many.marginal_rate / w  # per-core marginal rate with all this machine's workers busy
    here_s = many.startup_s + AVA_NUM_ROWS / many.marginal_rate
    vcpus = args.dataflow_workers * args.dataflow_vcpus
    dataflow_rate = vcpus * per_core
    add(f"(e) all of AVA here ({w} workers)", f"{_duration(here_s)} at {many.marginal_rate:.0f} img/s")
    add(
        f"(e) on {args.dataflow_workers} x {args.dataflow_vcpus} vCPU",
        f"{_duration(AVA_NUM_ROWS / dataflow_rate)} + startup, at {dataflow_rate:.0f} img/s",
    )
    add("    img/s for AVA in 1 h / 10 min", f"{AVA_NUM_ROWS / 3600:.0f} / {AVA_NUM_ROWS / 600:.0f} img/s")
    mean_bytes = (large.image_bytes / max(1, large.num_good))
    add(
        "    sample photo size vs AVA's",
        f"{mean_bytes / 1e3:.0f} kB vs ~{AVA_MEAN_JPEG_BYTES / 1e3:.0f} kB (estimate)",
    )

    print()
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<{vwidth}}  {'goal':<10} verdict")
    print("-" * (width + vwidth + 22))
    for label, value, goal, verdict in rows:
        print(f"{label:<{width}}  {value:<{vwidth}}  {goal:<10} {verdict}")
    print()
    print(
        f"Projection assumptions: each Dataflow vCPU does the per-core marginal rate measured here with "
        f"{w} workers ({per_core:.1f} img/s) on photos like the sample's; Dataflow's own startup "
        f"(typically 3-5 min) and reading from GCS are not included; the local figure needs the memory "
        f"the growth row implies."
    )


if __name__ == "__main__":
    main()
