"""Scores and ranks photos with an exported model: `python -m serving.predict --model=OUT PATH...`.

PATHs are files, folders (searched recursively) or glob patterns, local or gs://. Every
file is tried whatever its name, since the content decides: JPEG, PNG, GIF, BMP, TIFF,
WebP, MPO, AVIF, HEIC (with the `heic` extra) and whatever else Pillow reads. A photo's
score is what the evaluation would compute for it: `InputContract.from_photo`
(`trainer.model_input`, recorded with the model) normalises it with the dataset build's
own function (upright by EXIF, sRGB by ICC profile, alpha on white, first frame), stores
it as the build does and resizes it as the evaluation does, and the SavedModel's pixel
signature scores those very pixels. For a model that takes whole photos (pyramid
pooling, `configs/nima_spp.py`) photos of one shape share a batch.

Decoding runs in a pool of threads while the model scores the previous batch; batches
are filled from the photos that decoded, and at most a few batches of pixels are in
memory, whatever the number of photos (`--output=FILE` for a large library: the ranking
goes there and the terminal shows a progress bar). `--html=PAGE` also writes the ranking as
a page to look at: a grid of thumbnails of the pixels each photo was scored on, with its
score and predicted vote histogram, sortable and filterable by score (`RankingPage`).

Each image that cannot be scored (unreadable, truncated, too small...) is reported on its
own line with the reason and the rest are still scored; files that are not images at all
(empty files, text, sidecars) are counted and named in one line. The exit code is 1 when
an image or a named path could not be scored, 0 otherwise: stray files are no failure.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import io
import itertools
import json
import os
import sys
import urllib.parse
from typing import Any, Callable, Iterator, Sequence

from ava_core import terminal

if __name__ == "__main__":
    terminal.quiet_tensorflow()  # before TensorFlow loads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tqdm  # noqa: E402
from absl import app, flags  # noqa: E402

from ava_core import images, pages  # noqa: E402
from ava_core.rejections import RejectedInput  # noqa: E402
from serving import signature  # noqa: E402
from trainer import model_input  # noqa: E402

# Batches of decoded photos the decoding threads may hold ahead of the model: one to fill
# while the model scores another keeps both busy; more would only hold memory.
BATCHES_AHEAD = 2
_BARS = " ▁▂▃▄▅▆▇█"

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Score:
    """What the model's head reports for one photo (`serving.signature`): the mean always;
    std and distribution from a distribution head, probability_beautiful from a binary one."""

    path: str
    mean: float
    std: float | None = None
    distribution: tuple[float, ...] | None = None
    probability_beautiful: float | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file that holds no image at all (empty, text, a sidecar): listed, not a failure."""

    path: str


@dataclasses.dataclass
class Report:
    scores: list[Score]  # best first
    failures: list[Failure]  # images that could not be scored, with the reason
    not_images: list[str]  # files that hold no image at all


@dataclasses.dataclass(frozen=True)
class PixelModel:
    """The SavedModel's pixel signature and how a photo becomes its input."""

    score: Any  # the concrete function: score(pixels=uint8 tensor) -> {output name: tensor}
    contract: model_input.InputContract
    saved_model: Any  # keeps the variables the function reads alive


class NotASavedModelError(FileNotFoundError):
    pass


def load_model(model_dir: str) -> PixelModel:
    """The model's pixel signature and input contract; a directory that holds no such
    SavedModel is a one-line error."""
    export_command = f"`python -m serving.export --workdir=RUN --export_dir={model_dir}`"
    if not tf.saved_model.contains_saved_model(model_dir):
        raise NotASavedModelError(
            f"--model={model_dir} holds no SavedModel (saved_model.pb): export a trained run with {export_command}"
        )
    info_path = os.path.join(model_dir, signature.EXTRA_DIR, signature.INFO_FILE)
    try:
        with tf.io.gfile.GFile(info_path) as file:
            contract = model_input.InputContract.from_json(json.load(file)[signature.INPUT_CONTRACT])
    except (tf.errors.OpError, OSError, ValueError, KeyError, TypeError) as error:
        raise NotASavedModelError(
            f"--model={model_dir}: {info_path} does not say how photos become the model's input "
            f"({type(error).__name__}: {error}): it was exported by an older version; export the run again with {export_command}"
        ) from None
    saved_model = tf.saved_model.load(model_dir)
    if signature.PIXELS_SIGNATURE not in saved_model.signatures:
        raise NotASavedModelError(
            f"--model={model_dir} has no {signature.PIXELS_SIGNATURE!r} signature (it has {sorted(saved_model.signatures)}): "
            f"it was exported by an older version; export the run again with {export_command}"
        )
    return PixelModel(saved_model.signatures[signature.PIXELS_SIGNATURE], contract, saved_model)


def expand_paths(patterns: Sequence[str]) -> tuple[list[str], list[Failure]]:
    """Files named, found under folders, or matched by globs; sorted, without duplicates."""
    found, missing = [], []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            for folder, _, files in tf.io.gfile.walk(pattern):
                found += [f"{folder.rstrip('/')}/{name}" for name in files]
        elif any(char in pattern for char in "*?["):
            matches = [path for path in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(path)]
            found += matches
            if not matches:
                missing.append(Failure(pattern, "no file matches this pattern"))
        elif tf.io.gfile.exists(pattern):
            found.append(pattern)
        else:
            missing.append(Failure(pattern, "no such file or folder"))
    return sorted(set(found)), missing


def score_files(
    model: PixelModel,
    paths: Sequence[str],
    batch_size: int = 32,
    progress: bool | None = None,
    threads: int | None = None,
    on_scored: Callable[[list[Score], np.ndarray], None] | None = None,
) -> Report:
    """Scores every path; `progress` None shows the bar when stderr is a terminal.
    `on_scored(scores, pixels)` sees each batch's scores with the pixels they were scored
    on, before those are dropped (`RankingPage.add` writes their thumbnails).

    `threads` prepare photos (default: one a core): Pillow releases the interpreter lock
    while it decodes, resizes, converts colours and encodes the stored JPEG, and TensorFlow
    while it decodes and resizes that JPEG and while the model runs. A batch
    holds photos of one shape (a square model's photos all have one); when the photos
    waiting for a full batch of their shape reach `BATCHES_AHEAD` batches, the largest
    group is scored as it is, so no more than 2 x `BATCHES_AHEAD` batches of pixels are held
    (waiting and in the pool) whatever the mix of shapes.
    """
    report = Report([], [], [])
    waiting: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}

    def score_group(shape):
        group = waiting.pop(shape)
        pixels = np.stack([photo for _, photo in group])
        scores = _score(model, pixels, [name for name, _ in group])
        report.scores.extend(scores)
        if on_scored:
            on_scored(scores, pixels)
        bar.update(len(group))

    with concurrent.futures.ThreadPoolExecutor(threads or os.cpu_count()) as pool, tqdm.tqdm(
        total=len(paths), unit="photo", disable=None if progress is None else not progress, file=sys.stderr
    ) as bar:
        for path, prepared in _prepared(pool, paths, model.contract, BATCHES_AHEAD * batch_size):
            if isinstance(prepared, np.ndarray):
                group = waiting.setdefault(prepared.shape, [])
                group.append((path, prepared))
                if len(group) == batch_size:
                    score_group(prepared.shape)
                elif sum(map(len, waiting.values())) >= BATCHES_AHEAD * batch_size:
                    score_group(max(waiting, key=lambda shape: len(waiting[shape])))
            elif isinstance(prepared, Skipped):
                report.not_images.append(path)
                bar.update(1)
            else:
                report.failures.append(prepared)
                bar.update(1)
        for shape in list(waiting):
            score_group(shape)
    report.scores.sort(key=lambda score: (-score.mean, score.path))
    return report


def prepare(path: str, contract: model_input.InputContract) -> np.ndarray | Failure | Skipped:
    """The model's pixels for one file (`InputContract.from_photo`), or why there are none."""
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
        return contract.from_photo(data)
    except images.NotAnImage:
        return Skipped(path)
    except RejectedInput as error:
        return Failure(path, f"{error.reason.value.replace('_', ' ')}: {error.detail}")
    except Exception as error:  # noqa: BLE001 - whatever one file raises (a read error mostly) is its own report
        return Failure(path, f"unreadable: {type(error).__name__}: {getattr(error, 'message', error)}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one photo, folder or glob pattern to score")
    paths, failures = expand_paths(argv[1:])
    try:
        model = load_model(FLAGS.model)
    except NotASavedModelError as error:
        raise SystemExit(f"error: {error}") from None
    page = RankingPage(FLAGS.html) if FLAGS.html else None
    if page:  # a previous page's thumbnails, in a folder being scored, are not photos
        paths = [path for path in paths if not path.startswith(page.folder + "/")]
    report = score_files(model, paths, FLAGS.batch_size, on_scored=page.add if page else None)
    failures += report.failures
    if page:
        page.write(report, failures, FLAGS.model, model.contract)
    if FLAGS.output:
        with tf.io.gfile.GFile(FLAGS.output, "w") as file:
            file.write(format_scores(report.scores, FLAGS.format))
    if FLAGS.top or not FLAGS.output:
        sys.stdout.write(format_scores(report.scores[: FLAGS.top] if FLAGS.top else report.scores, FLAGS.format))
    for failure in failures:
        print(f"could not score {failure.path}: {failure.reason}", file=sys.stderr)
    if report.not_images:
        print(f"skipped {len(report.not_images)} files that are not images: {', '.join(report.not_images)}", file=sys.stderr)
    outputs = [f"{what} in {path}" for what, path in (("ranking", FLAGS.output), ("page", FLAGS.html)) if path]
    written = f" ({', '.join(outputs)})" if outputs else ""
    print(
        f"scored {len(report.scores)} photos{written}, {len(failures)} failed, {len(report.not_images)} not images",
        file=sys.stderr,
    )
    sys.exit(1 if failures else 0)


class RankingPage:
    """`--html=PAGE`: the photos ranked as a grid of thumbnails (`ava_core.pages`).

    Each batch's thumbnails are written to PAGE's folder (PAGE_files/) as soon as it is
    scored, so a library of any size holds no thumbnail in memory; the page itself is
    written at the end, when the ranking is known.
    """

    def __init__(self, page: str):
        self.page = page
        self.folder = pages.files_dir(page)
        if tf.io.gfile.exists(self.folder):
            tf.io.gfile.rmtree(self.folder)  # a previous page's thumbnails
        tf.io.gfile.makedirs(self.folder)
        self.thumbnails: dict[str, str] = {}  # photo path -> the thumbnail's address from the page

    def add(self, scores: Sequence[Score], pixels: np.ndarray) -> None:
        # On every core: Pillow lets go of the interpreter while it resizes and encodes, and
        # one thread alone would halve predict's rate (benchmarks/predict_benchmark.py).
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            thumbnails = list(pool.map(pages.thumbnail, pixels))
        for score, thumbnail in zip(scores, thumbnails):
            name = f"{len(self.thumbnails):06d}{pages.THUMBNAIL_SUFFIX}"
            with tf.io.gfile.GFile(f"{self.folder}/{name}", "wb") as file:
                file.write(thumbnail)
            self.thumbnails[score.path] = urllib.parse.quote(f"{os.path.basename(self.folder)}/{name}")

    def write(self, report: Report, failures: Sequence[Failure], model_dir: str, contract: model_input.InputContract) -> None:
        with tf.io.gfile.GFile(self.page, "w") as file:
            pages.write_page(
                file, "ranking.html.j2",
                title=f"{len(report.scores)} photos ranked by their predicted score",
                scores=report.scores, failures=failures, not_images=report.not_images,
                thumbnails=self.thumbnails, model=model_dir, squashed=not contract.whole_image,
                folder=_common_folder([score.path for score in report.scores]),
            )


def _common_folder(paths: Sequence[str]) -> str:
    """The folder every path is under, with its trailing '/' ('' when they share none): the
    page names each photo from there. Text, not os.path, so that gs:// keeps its '//'."""
    prefix = os.path.commonprefix(list(paths))
    return prefix[: prefix.rfind("/") + 1]


def format_scores(scores: Sequence[Score], output_format: str) -> str:
    if output_format == "json":
        return json.dumps([dataclasses.asdict(s) for s in scores], indent=1) + "\n"
    buffer = io.StringIO()
    if output_format == "csv":
        writer = csv.writer(buffer)
        writer.writerow(["rank", "path", "mean", "std", "probability_beautiful"] + [f"p{k}" for k in range(1, 11)])
        for rank, s in enumerate(scores, start=1):
            writer.writerow(
                [rank, s.path, f"{s.mean:.4f}", _optional(s.std, ".4f"), _optional(s.probability_beautiful, ".4f")]
                + [f"{p:.4f}" for p in s.distribution or ()]
            )
        return buffer.getvalue()
    width = max([len(s.path) for s in scores] + [4])
    buffer.write(f"{'rank':>4}  {'path':<{width}}  {'mean':>5}  {'std':>5}  {'P(>5)':>5}  votes 1..10\n")
    for rank, s in enumerate(scores, start=1):
        buffer.write(
            f"{rank:>4}  {s.path:<{width}}  {s.mean:5.2f}  {_optional(s.std, '5.2f', '–'):>5}  "
            f"{_optional(s.probability_beautiful, '5.2f', '–'):>5}  {_bar(s.distribution or ())}\n"
        )
    return buffer.getvalue()


def _optional(value: float | None, spec: str, missing: str = "") -> str:
    return missing if value is None else format(value, spec)


def _bar(distribution: Sequence[float]) -> str:
    peak = max(distribution, default=0.0) or 1.0
    return "".join(_BARS[int(round(p / peak * (len(_BARS) - 1)))] for p in distribution)


def _prepared(
    pool: concurrent.futures.Executor, paths: Sequence[str], contract: model_input.InputContract, ahead: int
) -> Iterator[tuple[str, Any]]:
    """(path, what `prepare` returned) in path order, with `ahead` files in the pool.

    A new file is handed to the pool only when one is taken out, so however many paths
    there are, no more than `ahead` decoded photos wait in memory.
    """
    remaining = iter(paths)
    pending = collections.deque((path, pool.submit(prepare, path, contract)) for path in itertools.islice(remaining, ahead))
    while pending:
        path, future = pending.popleft()
        for following in itertools.islice(remaining, 1):
            pending.append((following, pool.submit(prepare, following, contract)))
        yield path, future.result()


def _score(model: PixelModel, pixels: np.ndarray, names: list[str]) -> list[Score]:
    outputs = {name: value.numpy() for name, value in model.score(**{signature.PIXELS: tf.constant(pixels)}).items()}
    scores = []
    for i, path in enumerate(names):
        fields = {"mean": float(outputs[signature.MEAN][i])}
        if signature.DISTRIBUTION in outputs:
            fields["distribution"] = tuple(float(p) for p in np.round(outputs[signature.DISTRIBUTION][i], 6))
        for name in (signature.STD, signature.PROBABILITY_BEAUTIFUL):
            if name in outputs:
                fields[name] = float(outputs[name][i])
        scores.append(Score(path, **fields))
    return scores


def _define_flags() -> None:
    """Flags exist only when this module is the program, so importing it clashes with nothing."""
    flags.DEFINE_string("model", None, "Directory of a SavedModel written by serving.export.", required=True)
    flags.DEFINE_enum("format", "table", ["table", "csv", "json"], "Output format.")
    flags.DEFINE_string("output", "", "Write the full ranking to this file (local or gs://) instead of the terminal.")
    flags.DEFINE_integer("top", 0, "Print only the K best photos (0: all; with --output, none unless K is given).")
    flags.DEFINE_integer("batch_size", 32, "Photos per call of the model.")
    flags.DEFINE_string(
        "html", "", "Also write the ranking as a page of thumbnails to this file (local or gs://), its "
        "thumbnails in a folder beside it (PAGE_files/); open it in any browser."
    )


if __name__ == "__main__":
    _define_flags()
    terminal.run(main)
