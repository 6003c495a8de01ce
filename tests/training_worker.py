"""Runs one training job in its own process, as a test needs it.

Logical CPU devices must be configured before TensorFlow starts, and multi-worker
training needs one process per worker (TF_CONFIG comes from the environment), so the
strategy tests start this script:

    python tests/training_worker.py --strategy=mirrored --logical_cpus=2 --workdir=DIR \
        --overrides='{"dataset.data_dir": "...", "train.global_batch_size": 8}'
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--logical_cpus", type=int, default=1)
    parser.add_argument("--overrides", default="{}", help="JSON object of dotted config keys to values")
    args = parser.parse_args()
    logging.set_verbosity(logging.INFO)
    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from configs import demo
    from trainer import strategies, train

    config = demo.get_config()
    for key, value in json.loads(args.overrides).items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    strategy = strategies.make_strategy(args.strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, **train.train_and_evaluate(config, args.workdir, strategy)}))


if __name__ == "__main__":
    main()
