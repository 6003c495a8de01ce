"""Scores and ranks photos with an exported model: `python -m serving.predict --model=OUT PATH...`.

PATHs are files, folders (searched recursively) or glob patterns, local or gs://. Photos
are read in parallel and scored in batches by the SavedModel's `serving_default`
signature. A file that cannot be scored (unreadable, empty, not an image, truncated) is
reported on its own line with the reason and the rest are still scored; the exit code
is 1 when any file failed, 0 otherwise.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import sys
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from absl import app, flags

from serving import signature

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_BATCHES_IN_FLIGHT = 2
_BARS = " ▁▂▃▄▅▆▇█"

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Score:
    path: str
    mean: float
    std: float
    distribution: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Failure:
    path: str
    reason: str


def expand_paths(patterns: Sequence[str]) -> tuple[list[str], list[Failure]]:
    """Files named, found under folders, or matched by globs; sorted, without duplicates."""
    found, missing = [], []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            for folder, _, files in tf.io.gfile.walk(pattern):
                found += [f"{folder.rstrip('/')}/{name}" for name in files if name.lower().endswith(IMAGE_EXTENSIONS)]
        elif any(char in pattern for char in "*?["):
            matches = tf.io.gfile.glob(pattern)
            found += matches
            if not matches:
                missing.append(Failure(pattern, "no file matches this pattern"))
        elif tf.io.gfile.exists(pattern):
            found.append(pattern)
        else:
            missing.append(Failure(pattern, "no such file or folder"))
    return sorted(set(found)), missing


def score_files(model_dir: str, paths: Sequence[str], batch_size: int = 32, progress: bool = True) -> tuple[list[Score], list[Failure]]:
    """Scores every path. Files are read by a thread pool, and two batches are in the model
    at once, so one batch's in-graph decoding overlaps the other's network."""
    serve = load_signature(model_dir)
    scores, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as readers, concurrent.futures.ThreadPoolExecutor(
        max_workers=_BATCHES_IN_FLIGHT
    ) as scorers, tqdm.tqdm(total=len(paths), unit="photo", disable=not progress, file=sys.stderr) as bar:
        in_flight = []
        for batch in _batches(readers.map(_read, paths), batch_size):
            failures += [failure for _, _, failure in batch if failure is not None]
            readable = [(path, data) for path, data, failure in batch if failure is None]
            in_flight.append((scorers.submit(_score, serve, readable), len(batch)))
            if len(in_flight) > _BATCHES_IN_FLIGHT:
                _collect(in_flight.pop(0), scores, failures, bar)
        for pending in in_flight:
            _collect(pending, scores, failures, bar)
    return sorted(scores, key=lambda s: -s.mean), failures


def load_signature(model_dir: str):
    """The model's scoring function; a directory that holds no SavedModel is a one-line error."""
    if not tf.saved_model.contains_saved_model(model_dir):
        raise NotASavedModelError(
            f"--model={model_dir} holds no SavedModel (saved_model.pb): export a trained run with "
            f"`python -m serving.export --workdir=RUN --export_dir={model_dir}`"
        )
    return tf.saved_model.load(model_dir).signatures[signature.SIGNATURE]


class NotASavedModelError(FileNotFoundError):
    pass


def _collect(pending, scores: list, failures: list, bar) -> None:
    """Adds a finished batch to the running results, in place: linear in the number of photos."""
    future, size = pending
    batch_scores, batch_failures = future.result()
    bar.update(size)
    scores.extend(batch_scores)
    failures.extend(batch_failures)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one photo, folder or glob pattern to score")
    paths, failures = expand_paths(argv[1:])
    try:
        scores, unreadable = score_files(FLAGS.model, paths, FLAGS.batch_size, progress=sys.stderr.isatty())
    except NotASavedModelError as error:
        raise SystemExit(f"error: {error}") from None
    failures += unreadable
    shown = scores[: FLAGS.top] if FLAGS.top else scores
    sys.stdout.write(format_scores(shown, FLAGS.format))
    for failure in failures:
        print(f"could not score {failure.path}: {failure.reason}", file=sys.stderr)
    print(f"scored {len(scores)} photos, {len(failures)} failed", file=sys.stderr)
    sys.exit(1 if failures else 0)


def format_scores(scores: Sequence[Score], output_format: str) -> str:
    if output_format == "json":
        return json.dumps([dataclasses.asdict(s) for s in scores], indent=1) + "\n"
    buffer = io.StringIO()
    if output_format == "csv":
        writer = csv.writer(buffer)
        writer.writerow(["rank", "path", "mean", "std"] + [f"p{k}" for k in range(1, 11)])
        for rank, s in enumerate(scores, start=1):
            writer.writerow([rank, s.path, f"{s.mean:.4f}", f"{s.std:.4f}"] + [f"{p:.4f}" for p in s.distribution])
        return buffer.getvalue()
    width = max([len(s.path) for s in scores] + [4])
    buffer.write(f"{'rank':>4}  {'path':<{width}}  {'mean':>5}  {'std':>5}  votes 1..10\n")
    for rank, s in enumerate(scores, start=1):
        buffer.write(f"{rank:>4}  {s.path:<{width}}  {s.mean:5.2f}  {s.std:5.2f}  {_bar(s.distribution)}\n")
    return buffer.getvalue()


def _bar(distribution: Sequence[float]) -> str:
    peak = max(distribution) or 1.0
    return "".join(_BARS[int(round(p / peak * (len(_BARS) - 1)))] for p in distribution)


def _read(path: str) -> tuple[str, bytes | None, Failure | None]:
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
    except (tf.errors.OpError, OSError) as error:
        return path, None, Failure(path, f"unreadable: {getattr(error, 'message', error)}")
    if not data:
        return path, None, Failure(path, "empty file")
    if not _looks_like_an_image(data):
        return path, None, Failure(path, f"not a JPEG, PNG, GIF or BMP image (starts with {data[:8]!r})")
    return path, data, None


def _looks_like_an_image(data: bytes) -> bool:
    return data.startswith((b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM"))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score(serve, readable: list[tuple[str, bytes]]) -> tuple[list[Score], list[Failure]]:
    """Scores a batch at once; when one photo breaks the batch, scores them one by one to find it."""
    if not readable:
        return [], []
    try:
        outputs = serve(images=tf.constant([data for _, data in readable]))
    except tf.errors.InvalidArgumentError:
        if len(readable) == 1:
            return [], [Failure(readable[0][0], "TensorFlow cannot decode it: a truncated or corrupt image")]
        scores, failures = [], []
        for item in readable:
            item_scores, item_failures = _score(serve, [item])
            scores += item_scores
            failures += item_failures
        return scores, failures
    distribution = outputs[signature.DISTRIBUTION].numpy()
    mean, std = outputs[signature.MEAN].numpy(), outputs[signature.STD].numpy()
    return [
        Score(path, float(mean[i]), float(std[i]), tuple(float(p) for p in np.round(distribution[i], 6)))
        for i, (path, _) in enumerate(readable)
    ], []


def _define_flags() -> None:
    """Flags exist only when this module is the program, so importing it clashes with nothing."""
    flags.DEFINE_string("model", None, "Directory of a SavedModel written by serving.export.", required=True)
    flags.DEFINE_enum("format", "table", ["table", "csv", "json"], "Output format.")
    flags.DEFINE_integer("top", 0, "Print only the K best photos (0: all).")
    flags.DEFINE_integer("batch_size", 32, "Photos per call of the model.")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
