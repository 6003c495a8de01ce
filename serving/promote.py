"""Promotes a newly trained model to serving only when it beats the champion.

    python -m serving.promote --candidate=gs://B/runs/ID/export \
        --candidate_metrics=gs://B/runs/ID/run/eval/metrics.json \
        --serving_dir=gs://B/serving --version=ID [--decision_file=/workspace/decision.env]

The serving location holds every promoted model under `versions/<version>/` and one small
pointer object, `champion.json`, naming the current one with its test metrics. A scheduled
job must never publish a worse model, half a model, or lose the champion, so:

- worse: the candidate is promoted only when it beats the champion on every test metric
  the two share of EMD (lower is better) and SRCC of the mean score (higher): both when
  both models predict a distribution, SRCC alone when either is a regression or binary
  model (`--config.model.head`), which predict no distribution. A tie keeps the
  champion; unreadable or incomplete metrics on either side stop with an error and
  change nothing;
- half: the SavedModel is first copied to a new version folder and checked file by file;
  only then is the pointer rewritten, in one write (one object on GCS, a rename locally);
- lost: nothing is ever deleted or overwritten in place: old versions stay, and a
  candidate version that already exists is refused.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os

from ava_core import terminal

if __name__ == "__main__":
    terminal.quiet_tensorflow()  # before TensorFlow loads

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from trainer import run_dir  # noqa: E402

POINTER_FILE = "champion.json"
VERSIONS_DIR = "versions"
# Lower is better for EMD, higher for SRCC; a candidate must win on each that both report.
LOWER_IS_BETTER, HIGHER_IS_BETTER = ("emd",), ("srcc_mean",)
# What every head reports (the ranking the score exists for), and what a head with a
# distribution must report besides; a run without the head recorded is a distribution one.
ALWAYS_COMPARED, DISTRIBUTION_COMPARED = ("srcc_mean",), ("emd",)
DEFAULT_HEAD = "distribution"

FLAGS = flags.FLAGS


class PromotionError(RuntimeError):
    """Something is unreadable or incomplete: nothing was promoted and nothing changed."""


@dataclasses.dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    version: str
    champion_version: str | None

    def as_env(self) -> str:
        """Lines a later build step can `source`."""
        return f"PROMOTED={'true' if self.promoted else 'false'}\nVERSION={self.version}\nCHAMPION={self.champion_version or ''}\n"


def promote(candidate_dir: str, candidate_metrics_path: str, serving_dir: str, version: str) -> Decision:
    candidate_metrics = read_metrics(candidate_metrics_path)
    pointer_path = os.path.join(serving_dir, POINTER_FILE)
    champion = _read_pointer(pointer_path)
    if champion is not None:
        better, reason = is_better(candidate_metrics, champion["metrics"])
        if not better:
            return Decision(False, reason, version, champion["version"])
    else:
        reason = "no champion yet: first promotion"
    _check_saved_model(candidate_dir)
    target = os.path.join(serving_dir, VERSIONS_DIR, version)
    if tf.io.gfile.exists(target):
        raise PromotionError(f"{target} already exists: versions are never overwritten; give a new --version")
    _copy_tree(candidate_dir, target)
    _verify_copy(candidate_dir, target)
    _write_json(os.path.join(target, run_dir.METRICS_FILE), candidate_metrics)
    _write_pointer(
        pointer_path,
        {
            "version": version,
            "path": target,
            "metrics": candidate_metrics,
            "promoted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "previous": champion["version"] if champion else None,
        },
    )
    return Decision(True, reason, version, champion["version"] if champion else None)


def is_better(candidate: dict, champion: dict) -> tuple[bool, str]:
    """(whether the candidate beats the champion on every metric both report, why)."""
    shared = lambda names: [name for name in names if name in candidate and name in champion]
    lower, higher = shared(LOWER_IS_BETTER), shared(HIGHER_IS_BETTER)
    losses = [name for name in lower if not candidate[name] < champion[name]]
    losses += [name for name in higher if not candidate[name] > champion[name]]
    comparison = ", ".join(f"{name} {candidate[name]:.4f} vs champion {champion[name]:.4f}" for name in lower + higher)
    unshared = [name for name in LOWER_IS_BETTER + HIGHER_IS_BETTER if name not in lower + higher]
    if unshared:
        comparison += f"; not compared, as one of the two heads has none: {', '.join(unshared)}"
    if losses:
        return False, f"the champion stays: the candidate does not beat it on {', '.join(losses)} ({comparison})"
    return True, f"the candidate beats the champion ({comparison})"


def read_metrics(path: str) -> dict[str, float]:
    """The `model` metrics of a trainer.evaluate metrics.json, with the run's head; every
    metric its head must report has to be a finite number."""
    try:
        with tf.io.gfile.GFile(path) as file:
            result = json.load(file)
        metrics, head = result["model"], result.get("run", {}).get("head", DEFAULT_HEAD)
        values = {name: float(metrics[name]) for name in _required(head)}
    except (tf.errors.OpError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PromotionError(
            f"cannot read the metrics in {path} ({type(error).__name__}: {error}); expected trainer.evaluate's "
            "metrics.json with model.srcc_mean, and model.emd for a distribution head. Nothing was promoted."
        ) from None
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise PromotionError(f"{path}: {', '.join(bad)} is not a finite number. Nothing was promoted.")
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and (k in values or math.isfinite(v))}
    return {**numbers, **values, "head": head}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    decision = promote(FLAGS.candidate, FLAGS.candidate_metrics, FLAGS.serving_dir, FLAGS.version)
    print(("PROMOTED " if decision.promoted else "KEPT CHAMPION ") + decision.reason)
    if FLAGS.decision_file:
        with tf.io.gfile.GFile(FLAGS.decision_file, "w") as file:
            file.write(decision.as_env())


def _required(head: str) -> tuple[str, ...]:
    """The metrics a run with `head` must report to be compared."""
    return ALWAYS_COMPARED + (DISTRIBUTION_COMPARED if head == DEFAULT_HEAD else ())


def _read_pointer(path: str) -> dict | None:
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as file:
            pointer = json.load(file)
        metrics = pointer["metrics"]
        compared = {name: float(metrics[name]) for name in _required(metrics.get("head", DEFAULT_HEAD))}
        return {"version": str(pointer["version"]), "metrics": compared}
    except (ValueError, KeyError, TypeError) as error:
        raise PromotionError(
            f"the champion pointer {path} is unreadable ({type(error).__name__}: {error}). Nothing was promoted; "
            "repair it (or remove it to promote from scratch) by hand."
        ) from None


def _check_saved_model(directory: str) -> None:
    for required in ("saved_model.pb", "variables"):
        if not tf.io.gfile.exists(os.path.join(directory, required)):
            raise PromotionError(f"{directory} is not a complete SavedModel ({required} is missing). Nothing was promoted.")


def _files(root: str) -> dict[str, int]:
    """Relative path -> size of every file under root."""
    root = root.rstrip("/")
    files = {}
    for folder, _, names in tf.io.gfile.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[path[len(root) + 1 :]] = tf.io.gfile.stat(path).length
    return files


def _copy_tree(source: str, target: str) -> None:
    for relative in _files(source):
        destination = os.path.join(target, relative)
        tf.io.gfile.makedirs(os.path.dirname(destination))
        tf.io.gfile.copy(os.path.join(source, relative), destination, overwrite=False)


def _verify_copy(source: str, target: str) -> None:
    if _files(source) != _files(target):
        raise PromotionError(f"the copy in {target} differs from {source}; the pointer was not switched")


def _write_json(path: str, content: dict) -> None:
    with tf.io.gfile.GFile(path, "w") as file:
        json.dump(content, file, indent=2, sort_keys=True)


def _write_pointer(path: str, content: dict) -> None:
    """One write the readers see whole: a new object on GCS, a rename on a local disk."""
    scratch = path + ".incoming"
    _write_json(scratch, content)
    tf.io.gfile.rename(scratch, path, overwrite=True)


def _define_flags() -> None:
    flags.DEFINE_string("candidate", None, "SavedModel directory of the new model (serving.export).", required=True)
    flags.DEFINE_string("candidate_metrics", None, "trainer.evaluate's metrics.json of the new model.", required=True)
    flags.DEFINE_string("serving_dir", None, "The serving location (holds champion.json and versions/).", required=True)
    flags.DEFINE_string("version", None, "Name of the new version, e.g. the Cloud Build id.", required=True)
    flags.DEFINE_string("decision_file", "", "Write PROMOTED=, VERSION=, CHAMPION= lines here for later build steps.")


if __name__ == "__main__":
    _define_flags()
    terminal.run(main)
