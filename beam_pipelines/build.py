"""Builds the `ava` dataset with Beam: locally, or on Dataflow, Flink or Spark.

    python -m beam_pipelines.build --ava_dir=DIR --output_dir=OUT [--config=256] \
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

    python -m beam_pipelines.build --ava_dir=gs://B/ava --output_dir=gs://B/tfds \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp \
        --setup_file=./setup.py

Every flag other than the three of this module is Beam's own (`PipelineOptions`). It
runs the same builder as `tfds build ava --imports=ava_tfds`, so the output is the same:
TFRecords and dataset_info.json under OUT/ava/<config>/<version>/ (what `tfds.load` reads),
with rejected.jsonl, stats.json and eda.png beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Sequence

import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions

import ava_tfds  # noqa: F401  (registers the `ava` builder)
from beam_pipelines import stats, transforms

DATASET = "ava"


def main(argv: Sequence[str] | None = None) -> None:
    logging.getLogger().setLevel(logging.INFO)
    args, beam_args = _parse_args(argv)
    builder = tfds.builder(f"{DATASET}/{args.config}", data_dir=args.output_dir)
    if args.config != "sample" and not args.ava_dir:
        raise SystemExit(f"--ava_dir is required for --config={args.config}: where AVA.txt and images/ are")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=args.ava_dir, beam_options=PipelineOptions(beam_args)
        )
    )
    stats_path = builder.data_path / transforms.STATS_FILE
    if stats_path.exists():
        print(stats.format_summary(json.loads(stats_path.read_text())))
    logging.info("dataset written to %s (read it with tfds.load('%s', data_dir=%r))", builder.data_path, f"{DATASET}/{args.config}", args.output_dir)


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ava_dir", help="AVA in its own layout (local or gs://); not needed for --config=sample")
    parser.add_argument("--output_dir", required=True, help="TFDS data_dir to write into (local or gs://)")
    parser.add_argument("--config", default="256", choices=["256", "full", "sample"], help="builder config")
    return parser.parse_known_args(argv)


if __name__ == "__main__":
    main()
