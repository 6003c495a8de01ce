"""Shared by the trainer benchmarks: built datasets (the sample, and AVA-sized photos at 256 px) and a timer."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from typing import Callable

from ava_core import ava_index, scaled_layout

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


def ava_256_dataset(workdir: str, rows: int, distinct_photos: int) -> str:
    """The `ava/256` dataset of `rows` AVA rows whose images are `distinct_photos` photos of
    AVA's sizes (`scaled_layout`), built by the real build command on every core; built once
    per row count under `workdir` and reused. Returns its TFDS data_dir."""
    root = pathlib.Path(workdir)
    data_dir = root / f"tfds_{rows}"
    if not list(data_dir.glob("ava/256/*/dataset_info.json")):
        layout = root / f"ava_{rows}"
        if not (layout / ava_index.AVA_INDEX_FILE).exists():
            scaled_layout.write_layout(layout, rows, scaled_layout.draw_photos(root / "photos", distinct_photos), seed=0)
        log = root / f"build_{rows}.log"
        with open(log, "wb") as log_file:
            command = [sys.executable, "-m", "beam_pipelines.build", "--config=256", f"--ava_dir={layout}", f"--output_dir={data_dir}"]
            if subprocess.run(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"the build of {layout} failed; its output is in {log}")
    return str(data_dir)


def rate(run: Callable[[], int], seconds: float = 20.0, warmup: int = 1) -> float:
    """Items per second of `run` (which returns how many items it did), after `warmup` calls."""
    for _ in range(warmup):
        run()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += run()
    return done / (time.perf_counter() - start)
