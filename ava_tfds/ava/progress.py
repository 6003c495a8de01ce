"""Progress of a local build: rows done, examples, rejections, rate and ETA.

The local runners report Beam counters only when a stage ends, and the decoding of all
of AVA is one stage, so each worker process (a separate process under
`multi_processing`) keeps a small JSON file of the rows it has settled in a local
directory, and the process that started the pipeline sums those files and shows a bar.
On Dataflow the same counts are Beam counters in the console, and no directory is given.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import threading
import time
import uuid

from apache_beam.options.pipeline_options import PipelineOptions

EXAMPLES, REJECTED = "examples", "rejected"
FLUSH_INTERVAL_S = 2.0
DISPLAY_INTERVAL_S = 10.0


class ProgressOptions(PipelineOptions):
    """`--progress_dir`: where workers on this machine report their counts (local runs only)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--progress_dir",
            default=None,
            help="A local directory for the decode workers' progress files; unset on remote runners.",
        )


class ProgressReporter:
    """Worker side: counts settled rows and rewrites its own file at most every FLUSH_INTERVAL_S.

    One per process and directory (`for_dir`), shared by the bundles that run in the
    process's threads.
    """

    _instances: dict[str, "ProgressReporter"] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_dir(cls, progress_dir: str) -> "ProgressReporter":
        with cls._instances_lock:
            if progress_dir not in cls._instances:
                cls._instances[progress_dir] = cls(progress_dir)
            return cls._instances[progress_dir]

    def __init__(self, progress_dir: str):
        pathlib.Path(progress_dir).mkdir(parents=True, exist_ok=True)
        self._path = pathlib.Path(progress_dir) / f"{os.getpid()}-{uuid.uuid4().hex}.json"
        self._counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def add(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1
            due = time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            partial = self._path.with_suffix(f".{threading.get_ident()}.partial")
            partial.write_text(json.dumps(self._counts))
            os.replace(partial, self._path)
            self._last_flush = time.monotonic()


def read_progress(progress_dir: str) -> collections.Counter:
    """The counts of every reporter so far (a retried bundle counts twice: it is a display)."""
    total: collections.Counter = collections.Counter()
    for path in pathlib.Path(progress_dir).glob("*.json"):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced while read: the next poll sees it
    return total


class ProgressMonitor(threading.Thread):
    """Shows a tqdm bar of the rows decoded out of `total_rows` while the pipeline runs."""

    def __init__(self, progress_dir: str, total_rows: int, interval_s: float = DISPLAY_INTERVAL_S):
        super().__init__(daemon=True, name="build-progress")
        self._progress_dir = progress_dir
        self._total_rows = total_rows
        self._interval_s = interval_s
        self._finished = threading.Event()

    def run(self) -> None:
        from tqdm import tqdm

        with tqdm(total=self._total_rows, unit="rows", desc="decoded", mininterval=0, dynamic_ncols=True) as bar:
            while not self._finished.wait(self._interval_s):
                self._show(bar)
            self._show(bar)

    def stop(self) -> None:
        self._finished.set()
        self.join()

    def _show(self, bar) -> None:
        counts = read_progress(self._progress_dir)
        done = min(counts[EXAMPLES] + counts[REJECTED], self._total_rows)
        bar.set_postfix({EXAMPLES: counts[EXAMPLES], REJECTED: counts[REJECTED]}, refresh=False)
        bar.update(done - bar.n)
