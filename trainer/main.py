"""Trains NIMA: `python -m trainer.main --config=configs/nima_mobilenet.py --workdir=DIR --strategy=mirrored`.

Any config value can be overridden on the command line (`--config.train.global_batch_size=512`);
`--helpfull` lists them with the defaults of configs/nima_mobilenet.py. Run the same command
again after a crash or preemption: it resumes from the last checkpoint in --workdir.
"""

from __future__ import annotations

import os
import sys

from ava_core import terminal

if __name__ == "__main__":
    terminal.quiet_tensorflow()  # before TensorFlow loads

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import configs  # noqa: E402
from configs import nima_mobilenet  # noqa: E402
from trainer import actions, input_pipeline, strategies, train  # noqa: E402


def _config_help() -> str:
    leaves = []

    def walk(node, prefix):
        for key, value in node.items():
            if hasattr(value, "items"):
                walk(value, f"{prefix}{key}.")
            else:
                leaves.append(f"--config.{prefix}{key}={value!r}")

    walk(nima_mobilenet.get_config(), "")
    return "Experiment config file (configs/*.py). Every value can be overridden; those of configs/nima_mobilenet.py: " + " ".join(leaves)


_CONFIG = config_flags.DEFINE_config_file("config", None, _config_help(), lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs, history and metrics go (local or gs://).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(strategies.STRATEGIES), "tf.distribute strategy.")
_TPU = flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu ('' means the local TPU VM).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    strategy = strategies.make_strategy(_STRATEGY.value, _TPU.value)
    print(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replicas", flush=True)
    try:
        result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, strategy)
    except input_pipeline.DatasetNotBuiltError as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"{result['split']} split ({result['model']['num_images']} images)\n"
        f"model ({_CONFIG.value.model.head} head): {actions.headline(result['model'])}\n"
        f"baseline (training mean distribution): {actions.headline(result['baseline'])}"
    )


def resolve_config_path(argv: list[str]) -> list[str]:
    """Lets `--config=configs/x.py` name the installed config where the repository is not
    there (a Vertex AI container that pip-installed the package)."""
    resolved = []
    for arg in argv:
        if arg.startswith("--config="):
            path, colon, parameter = arg[len("--config="):].partition(":")
            installed = os.path.join(os.path.dirname(configs.__file__), os.path.basename(path))
            if not os.path.exists(path) and os.path.exists(installed):
                arg = f"--config={installed}{colon}{parameter}"
        resolved.append(arg)
    return resolved


if __name__ == "__main__":
    terminal.run(main, argv=resolve_config_path(sys.argv))
