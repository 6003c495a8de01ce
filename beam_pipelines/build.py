"""Builds the `ava` dataset with Beam: locally, or on Dataflow, Flink or Spark.

    python -m beam_pipelines.build --ava_dir=DIR --output_dir=OUT [--config=256]

    python -m beam_pipelines.build --ava_dir=gs://B/ava --output_dir=gs://B/tfds \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp \
        --setup_file=./setup.py

Every flag other than the four of this module is Beam's own (`PipelineOptions`). Without
`--runner` the build runs on this machine: Beam's FnApiRunner with one worker process per
core (`--direct_num_workers` to change that). It
runs the same builder as `tfds build ava --imports=ava_tfds`, so the output is the same:
TFRecords and dataset_info.json under OUT/ava/<config>/<version>/ (what `tfds.load` reads),
with rejected.jsonl, stats.json and eda.png beside them. A local run shows a progress bar
(rows decoded, examples, rejections, rate, ETA) and keeps the runner's log lines to
warnings unless --log_level says otherwise.

Reading failing wholesale (no permission, expired credentials, a bucket gone) is no bad
data: the workers read a sample of the photos before the main pass and tally their reads
as they go (`--read_sample_size`, `--max_read_failure_fraction`), and such a build stops
with a one-line cause, a non-zero exit and nothing published.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from typing import Sequence

import tensorflow_datasets as tfds
from absl import logging as absl_logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

import ava_tfds  # noqa: F401  (registers the `ava` builder)
from ava_core import ava_index, read_failures, terminal
from ava_tfds.ava import ava_dataset_builder, progress, stats, transforms

DATASET = "ava"
_LOCAL_RUNNERS = {None, "DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}


def main(argv: Sequence[str] | None = None) -> None:
    args, beam_args = _parse_args(argv)
    _set_log_level(args.log_level)
    if _reaches_storage_through_tensorflow(args.output_dir, args.ava_dir):
        # TensorFlow loads: quietly, or its C++ start-up lines would bury the progress bar.
        # A local build never loads it (nor do the workers: `ava_tfds.ava.shards`), which
        # saves its import, seconds of CPU.
        terminal.quiet_tensorflow()
    builder = tfds.builder(f"{DATASET}/{args.config}", data_dir=args.output_dir)
    if not builder.builder_config.num_sample_images and not args.ava_dir:
        raise SystemExit(f"--ava_dir is required for --config={args.config}: where AVA.txt and images/ are")
    beam_args = with_local_runner_defaults(beam_args)
    options = PipelineOptions(beam_args)
    monitor = progress_dir = None
    runner = options.view_as(StandardOptions).runner
    if runner not in _LOCAL_RUNNERS:
        print(remote_progress_hint(runner, options.view_as(GoogleCloudOptions)), flush=True)
    elif not options.view_as(progress.ProgressOptions).progress_dir:
        progress_dir = tempfile.mkdtemp(prefix="ava-build-progress-")
        options = PipelineOptions([*beam_args, f"--progress_dir={progress_dir}"])
        total = _count_rows(args.ava_dir)
        if total:
            monitor = progress.ProgressMonitor(progress_dir, total)
            monitor.start()
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=args.ava_dir, beam_options=options)
        )
    except ava_dataset_builder.TemplateOnly as template:
        print(
            f"Dataflow job written to {template.template_location} with its files staged, and not run: nothing was "
            f"built or published. Run the same command without --template_location to build {DATASET}/{args.config}: "
            "the build's last step (naming the shards, dataset_info.json) runs in this process after the job."
        )
        return
    except FileNotFoundError as error:  # the builder's own checks of the AVA directory say what to do
        raise SystemExit(f"error: {error}") from None
    except Exception as error:  # noqa: BLE001 - a storage failure, from whichever runner, is told in one line
        cause = storage_failure(error)
        if cause is None:
            raise
        raise SystemExit(f"error: {cause}") from None
    finally:
        if monitor is not None:
            monitor.stop()
        if progress_dir is not None:
            shutil.rmtree(progress_dir, ignore_errors=True)
    stats_path = builder.data_path / stats.STATS_FILE
    if stats_path.exists():
        print(stats.format_summary(json.loads(stats_path.read_text())))
    print(f"Dataset written to {builder.data_path}: tfds.load('{DATASET}/{args.config}', data_dir={args.output_dir!r})")


def remote_progress_hint(runner: str, cloud: GoogleCloudOptions) -> str:
    """What stands for the local progress bar on a remote runner, whose workers write no local files."""
    counters = f"the job's counters (namespace {transforms.METRICS_NAMESPACE}: index_rows, examples_<split>, rejected_<reason>)"
    if runner == "DataflowRunner":
        return (
            f"Progress: {counters} in the Dataflow console, "
            f"https://console.cloud.google.com/dataflow/jobs?project={cloud.project}; this process waits for the job, "
            "then names the shards and writes dataset_info.json."
        )
    return f"Progress: {counters} in {runner}'s own monitoring; this process waits for the job."


def storage_failure(error: BaseException) -> str | None:
    """The one-line cause of a build stopped by `read_failures.StorageFailure`, which runners
    hand back inside their own exceptions (a worker's traceback as text); None for any other error."""
    text = str(error)
    start = text.rfind(read_failures.MESSAGE_PREFIX)
    if start < 0:
        return None
    return text[start:].splitlines()[0].rstrip("'\"")


def with_local_runner_defaults(beam_args: Sequence[str]) -> list[str]:
    """Beam's flags, plus the local multi-process runner on every core when no runner is named."""
    if any(arg.startswith("--runner") for arg in beam_args):
        return list(beam_args)
    workers = [] if any(arg.startswith("--direct_num_workers") for arg in beam_args) else [
        f"--direct_num_workers={ava_dataset_builder.LOCAL_WORKERS}"
    ]
    return [*beam_args, *ava_dataset_builder.LOCAL_RUNNER_FLAGS, *workers]


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ava_dir", help="AVA in its own layout (local or gs://); not needed for the sample configs")
    parser.add_argument("--output_dir", required=True, help="TFDS data_dir to write into (local or gs://)")
    parser.add_argument(
        "--config", default="256", choices=[config.name for config in ava_dataset_builder.Builder.BUILDER_CONFIGS],
        help="builder config",
    )
    parser.add_argument(
        "--log_level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="of this process and the runner's worker log lines it relays (INFO shows Beam's own progress)",
    )
    return parser.parse_known_args(argv)


def _set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level)
    absl_logging.set_verbosity(level.lower())
    relay = logging.getLogger("apache_beam.runners.portability.local_job_service")
    if level == "WARNING":  # the local workers' start-up warnings arrive through this logger, one per worker
        relay.setLevel(logging.ERROR)
    # A storage failure's worker traceback, relayed: `main` says its cause in one line.
    relay.addFilter(lambda record: read_failures.MESSAGE_PREFIX not in record.getMessage())


def _reaches_storage_through_tensorflow(*paths: str | None) -> bool:
    """Whether TFDS's file layer, etils.epath, will use tf.io.gfile: for object stores
    (gs://), unless EPATH_USE_TF turns it to fsspec (as etils reads the variable)."""
    epath_uses_tensorflow = os.environ.get("EPATH_USE_TF", "").lower() not in ("false", "no", "f", "0")
    return epath_uses_tensorflow and any(path and FileSystems.get_scheme(path) not in (None, "file") for path in paths)


def _count_rows(ava_dir: str | None) -> int:
    """Non-blank lines of AVA.txt, the bar's total; 0 when there is none yet (the sample is drawn later)."""
    if not ava_dir:
        return 0
    path = f"{ava_dir.rstrip('/')}/{ava_index.AVA_INDEX_FILE}"
    if not FileSystems.exists(path):
        return 0
    with FileSystems.open(path) as index:
        return sum(1 for line in index if line.strip())


if __name__ == "__main__":
    main()
