"""NIMA with spatial pyramid pooling over the whole photo at its own aspect ratio (the 004 write-up).

The `full` dataset keeps every photo at its original size. The input pipeline resizes a
photo's longer side to 320 px, with no crop that could cut the composition away, and
batches photos of one shape together; the MobileNet feature map is max-pooled over 1x1,
2x2 and 4x4 grids, so the head sees a vector of one size whatever the photo's shape.
Everything else is the paper-scale setting of nima_mobilenet.py.

    python -m trainer.main --config=configs/nima_spp.py --workdir=DIR --strategy=mirrored \
        --config.dataset.data_dir=gs://BUCKET/tfds

`--config=configs/nima_spp.py:demo` is its CPU-sized counterpart on the synthetic
`sample_full` dataset, with the settings of configs/demo.py.
"""

import ml_collections

from configs import demo, nima_mobilenet

VARIANTS = ("", "demo")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    if variant not in VARIANTS:
        raise ValueError(f"configs/nima_spp.py:{variant} is unknown; use configs/nima_spp.py or configs/nima_spp.py:demo")
    config = demo.get_config() if variant == "demo" else nima_mobilenet.get_config()
    config.dataset.name = "ava/sample_full" if variant == "demo" else "ava/full"
    config.model.pooling = "spp"
    config.input.keep_aspect_ratio = True
    if variant == "demo":
        config.input.max_side = 128  # 128 x 64..80 px: the pixels of the square demo's 96 x 96
        config.input.side_multiple = 16
    return config
