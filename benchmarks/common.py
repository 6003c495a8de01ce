"""Shared by the trainer benchmarks: a built sample dataset and a timer."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = os.path.join("/tmp", "nima_benchmark_tfds")


def sample_dataset(data_dir: str = DEFAULT_DATA_DIR) -> str:
    """The `ava/sample` dataset (400 photos at 256x256), built once and reused."""
    if not pathlib.Path(data_dir, "ava", "sample").exists():
        subprocess.run(
            [sys.executable, "-m", "beam_pipelines.build", "--config=sample", f"--output_dir={data_dir}"],
            check=True, cwd=REPO, capture_output=True,
        )
    return data_dir


def rate(run: Callable[[], int], seconds: float = 20.0, warmup: int = 1) -> float:
    """Items per second of `run` (which returns how many items it did), after `warmup` calls."""
    for _ in range(warmup):
        run()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += run()
    return done / (time.perf_counter() - start)
