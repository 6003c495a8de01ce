"""A CPU-sized NIMA on the synthetic `sample` dataset: the quick start's training run.

A MobileNet v1 with alpha 0.25 at 96 px from random weights (no download needed) learns
the sample's hidden aesthetic function in a few minutes on 2 CPU cores.
"""

import ml_collections

from configs import nima_mobilenet


def get_config() -> ml_collections.ConfigDict:
    config = nima_mobilenet.get_config()
    config.dataset.name = "ava/sample"
    config.input.image_size = 96
    config.input.shuffle_buffer = 512
    config.model.alpha = 0.25
    config.model.weights = "none"
    config.model.dropout = 0.2
    config.model.batchnorm_momentum = 0.9
    config.train.global_batch_size = 32
    config.train.eval_batch_size = 64
    config.train.mixed_precision = False
    config.train.jit_compile = False
    config.train.log_every_steps = 5
    config.train.checkpoint_every_steps = 20
    config.head.epochs = 1
    config.head.learning_rate = 3e-3
    config.finetune.epochs = 12
    config.finetune.learning_rate = 2e-3
    config.finetune.decay = 1e-3
    return config
