"""NIMA models: a Keras applications backbone with its top replaced by Dropout + Dense(10, softmax).

Backbones are looked up by name (`config.model.backbone`), so an experiment changes a
string, not the trainer. The model takes RGB pixels in 0..255 and applies its backbone's
own preprocessing inside the graph: training, evaluation, export and serving all feed
the same kind of tensor.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import ml_collections

from ava_core import ratings

HEAD_NAME = "nima_head"


@dataclasses.dataclass(frozen=True)
class Backbone:
    constructor: Callable[..., keras.Model]
    # Maps 0..255 pixels to the backbone's input range; None when the backbone does it itself.
    preprocessing: Callable[[], keras.layers.Layer] | None
    takes_alpha: bool = False


def _to_unit_range() -> keras.layers.Layer:
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")


BACKBONES: dict[str, Backbone] = {
    "mobilenet": Backbone(keras.applications.MobileNet, _to_unit_range, takes_alpha=True),
    "mobilenet_v2": Backbone(keras.applications.MobileNetV2, _to_unit_range, takes_alpha=True),
    "mobilenet_v3_small": Backbone(keras.applications.MobileNetV3Small, None, takes_alpha=True),
    "mobilenet_v3_large": Backbone(keras.applications.MobileNetV3Large, None, takes_alpha=True),
    "efficientnet_b0": Backbone(keras.applications.EfficientNetB0, None),
    "efficientnet_v2_s": Backbone(keras.applications.EfficientNetV2S, None),
    "inception_v3": Backbone(keras.applications.InceptionV3, _to_unit_range),
}


def build_model(model_config: ml_collections.ConfigDict, image_size: int) -> tuple[keras.Model, keras.Model]:
    """Returns (nima_model, backbone); the backbone is frozen and unfrozen per phase.

    `model_config.weights`: "imagenet" (Keras downloads them), a path to a weights file
    of the headless backbone (for machines without network), or "none".
    """
    if model_config.backbone not in BACKBONES:
        raise ValueError(
            f"--config.model.backbone={model_config.backbone!r} is unknown; choose one of {sorted(BACKBONES)}"
        )
    spec = BACKBONES[model_config.backbone]
    weights = model_config.weights
    from_file = weights not in ("imagenet", "none", "", None)
    if from_file and not os.path.exists(weights) and "://" not in weights:
        raise FileNotFoundError(
            f"--config.model.weights={weights!r}: no such file; give 'imagenet', 'none' or a weights file"
        )
    kwargs = dict(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(image_size, image_size, 3),
        pooling="avg",
    )
    if spec.takes_alpha:
        kwargs["alpha"] = model_config.alpha
    if spec.preprocessing is None and model_config.backbone.startswith("mobilenet_v3"):
        kwargs["include_preprocessing"] = True
    backbone = spec.constructor(**kwargs)
    if from_file:
        backbone.load_weights(weights)
    if model_config.batchnorm_momentum:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = model_config.batchnorm_momentum

    pixels = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = spec.preprocessing()(pixels) if spec.preprocessing else pixels
    x = backbone(x)
    x = keras.layers.Dropout(model_config.dropout, name="dropout")(x)
    # float32 even under mixed precision: a float16 softmax loses the small bins.
    distribution = keras.layers.Dense(ratings.NUM_BINS, activation="softmax", dtype="float32", name=HEAD_NAME)(x)
    return keras.Model(pixels, distribution, name=f"nima_{model_config.backbone}"), backbone
