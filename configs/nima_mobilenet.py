"""NIMA with MobileNet v1 on all of AVA at 256 px: the paper-scale experiment.

Hyperparameters are the project report's best model (dropout 0.75; head: Adam 1e-3 for
5 epochs; all layers: Adam 3e-5 with decay 2.3e-5 for 9 epochs), run on the full training
set with mixed precision and XLA for accelerators.

    python -m trainer.main --config=configs/nima_mobilenet.py --workdir=DIR --strategy=mirrored \
        --config.dataset.data_dir=gs://BUCKET/tfds
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.dataset = ml_collections.ConfigDict()
    config.dataset.name = "ava/256"
    # TFDS data_dir holding the built dataset; "" means TFDS's default (TFDS_DATA_DIR or
    # ~/tensorflow_datasets).
    config.dataset.data_dir = ""
    config.dataset.train_split = "train"
    config.dataset.eval_split = "validation"
    config.dataset.test_split = "test"

    config.input = ml_collections.ConfigDict()
    config.input.image_size = 224  # the model input
    # Side of the random training window as a share of the stored image (224 of 256),
    # resized to image_size when the two differ.
    config.input.crop_fraction = 0.875
    # False lets tf.data hand out images as they finish decoding (faster); True makes the
    # order, and so a run, reproducible.
    config.input.deterministic = False
    config.input.shuffle_buffer = 4096
    # 0 keeps every image; n keeps at most n per mean-score bin and epoch (the report's
    # per-bin undersampling against AVA's many average photos).
    config.input.max_images_per_bin = 0
    # True: the whole photo at its own aspect ratio (no crop), its longer side resized to
    # max_side and its shorter side to the nearest multiple of side_multiple; photos are
    # batched by that shape (trainer/input_pipeline.py). Needs model.pooling = "spp".
    config.input.keep_aspect_ratio = False
    config.input.max_side = 320
    config.input.side_multiple = 32  # the backbone's stride: each feature cell covers whole pixels

    config.model = ml_collections.ConfigDict()
    config.model.backbone = "mobilenet"  # see trainer/models.py BACKBONES
    config.model.alpha = 1.0  # width multiplier of the MobileNets
    config.model.weights = "imagenet"  # "imagenet", a local .h5/.keras weights file, or "none"
    config.model.dropout = 0.75
    # Moving-average momentum of the backbone's batch norms; 0 keeps the backbone's own.
    # A network trained from scratch for few steps needs a shorter memory (0.9), or its
    # inference-mode statistics lag the weights and every prediction looks alike.
    config.model.batchnorm_momentum = 0.0
    config.model.head = "distribution"  # "distribution" (EMD), "regression" or "binary": trainer/heads.py
    config.model.binary_l2 = 0.1  # L2 on the binary head's weights (the write-up's l = 0.1)
    config.model.pooling = "avg"  # "avg", or "spp": spatial pyramid pooling over any input shape
    config.model.spp_levels = (1, 2, 4)  # grid sides of the pyramid

    config.train = ml_collections.ConfigDict()
    config.train.global_batch_size = 256
    config.train.eval_batch_size = 256
    config.train.seed = 0
    config.train.mixed_precision = True
    config.train.jit_compile = True
    # 0 trains on the whole split each epoch; n stops an epoch after n steps (smoke runs).
    config.train.max_steps_per_epoch = 0
    config.train.log_every_steps = 100
    # Steps in one tf.function call (a tf.while_loop on the device, as Keras's
    # steps_per_execution): the host dispatches and reads back once per call, not per step.
    # A call also ends at every log and checkpoint step, so keep those intervals multiples
    # of it to keep calls full.
    config.train.steps_per_loop = 100
    config.train.checkpoint_every_steps = 500
    config.train.keep_checkpoints = 3

    config.head = ml_collections.ConfigDict()  # phase 1: backbone frozen
    config.head.epochs = 5
    config.head.learning_rate = 1e-3
    config.head.decay = 0.0  # inverse-time decay per step: lr / (1 + decay * step)

    config.finetune = ml_collections.ConfigDict()  # phase 2: every layer
    config.finetune.epochs = 9
    config.finetune.learning_rate = 3e-5
    config.finetune.decay = 2.3e-5
    return config
