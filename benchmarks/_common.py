"""Shared by the trainer benchmarks: the sample dataset, a quiet-machine check, timers, tables."""

from __future__ import annotations

import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = os.path.join("/tmp", "bench_tfds")
_TICKS = os.sysconf("SC_CLK_TCK")


def sample_dataset(data_dir: str = DEFAULT_DATA_DIR) -> str:
    """The `ava/sample` dataset (400 photos at 256x256), built once (about 40 s) and reused."""
    if not pathlib.Path(data_dir, "ava", "sample").exists():
        print(f"building ava/sample into {data_dir} (about 40 s)...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "beam_pipelines.build", "--config=sample", f"--output_dir={data_dir}",
             "--runner=FnApiRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
            check=True, cwd=REPO, capture_output=True,
        )
    return data_dir


def wait_for_quiet_machine(max_load: float = 1.5, poll_seconds: float = 30.0, give_up_seconds: float = 600.0) -> float:
    """Waits until the 1-minute load average is at most `max_load` (other jobs share this
    machine); returns the load it started with. Gives up, with a warning, after `give_up_seconds`."""
    waited = 0.0
    while True:
        load = os.getloadavg()[0]
        if load <= max_load or waited >= give_up_seconds:
            if load > max_load:
                print(f"WARNING: 1-minute load still {load:.2f} after {waited:.0f} s; measuring anyway", flush=True)
            return load
        print(f"1-minute load {load:.2f} > {max_load}: waiting {poll_seconds:.0f} s", flush=True)
        time.sleep(poll_seconds)
        waited += poll_seconds


class ForeignCpu:
    """CPU time other processes took while a block ran, as a share of the machine.

    Our own load would make a load-average check meaningless between two measurements of
    the same run, so each measurement reports how busy the rest of the machine was.
    """

    def __enter__(self) -> "ForeignCpu":
        self._start = (time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        wall, busy, own = time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds()
        elapsed = max(wall - self._start[0], 1e-9)
        self.share = max(0.0, (busy - self._start[1]) - (own - self._start[2])) / (elapsed * (os.cpu_count() or 1))


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def rate(run: Callable[[], int], seconds: float, warmup: int = 1) -> tuple[float, float]:
    """(items per second of `run`, which returns how many items it did, after `warmup` calls;
    other processes' CPU share meanwhile)."""
    for _ in range(warmup):
        run()
    with ForeignCpu() as foreign:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += run()
        elapsed = time.perf_counter() - start
    return done / elapsed, foreign.share


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine_line() -> str:
    import tensorflow as tf

    return (
        f"{time.strftime('%Y-%m-%d %H:%M')} | {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__} | load at start {os.getloadavg()[0]:.2f}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, columns padded so that it also reads as plain text."""
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else f"{c}" for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"
    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |"] + [line(r) for r in cells[1:]])
