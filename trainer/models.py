"""NIMA models: a Keras applications backbone, pooled, then Dropout and a head (`heads`).

Backbones are looked up by name (`config.model.backbone`), so an experiment changes a
string, not the trainer. The model takes RGB pixels in 0..255 and applies its backbone's
own preprocessing inside the graph: training, evaluation, export and serving all feed
the same kind of tensor.

Pooling (`config.model.pooling`): `avg`, global average pooling over a square input, or
`spp`, spatial pyramid pooling (the 004 write-up, after He et al. 2014), whose output
size does not depend on the feature map's: the model then takes photos of any height and
width, so that the whole photo can be seen at its own aspect ratio.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import ml_collections
import tensorflow as tf

from trainer import heads

POOLINGS = ("avg", "spp")


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

    image_size: the side of the square input of an `avg` model; an `spp` model takes any
    height and width and does not use it.
    `model_config.weights`: "imagenet" (Keras downloads them), a path to a weights file
    of the headless backbone (for machines without network), or "none".
    """
    if model_config.backbone not in BACKBONES:
        raise ValueError(
            f"--config.model.backbone={model_config.backbone!r} is unknown; choose one of {sorted(BACKBONES)}"
        )
    if model_config.pooling not in POOLINGS:
        raise ValueError(f"--config.model.pooling={model_config.pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")
    pyramid = model_config.pooling == "spp"
    input_shape = (None, None, 3) if pyramid else (image_size, image_size, 3)
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
        input_shape=input_shape,
        pooling=None if pyramid else "avg",
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

    pixels = keras.Input(shape=input_shape, name="pixels")
    x = spec.preprocessing()(pixels) if spec.preprocessing else pixels
    x = backbone(x)
    if pyramid:
        pyramid_pooling = SpatialPyramidPooling(tuple(model_config.spp_levels), name="spatial_pyramid_pooling")
        x = pyramid_pooling(x)
        # Adam moves every weight by about the learning rate whatever its gradient, so a head
        # over 21 cells' features would move its output 21 times as fast as one over an
        # average-pooled vector, and a network learning from scratch diverges at first. The
        # head sees the cells' maxima divided by their number: the same functions, the pace
        # of the average-pooled model.
        x = keras.layers.Rescaling(1.0 / pyramid_pooling.num_cells, name="per_cell")(x)
    x = keras.layers.Dropout(model_config.dropout, name="dropout")(x)
    output = heads.build(model_config)(x)
    return keras.Model(pixels, output, name=f"nima_{model_config.backbone}"), backbone


@keras.saving.register_keras_serializable(package="ava_nima")
class SpatialPyramidPooling(keras.layers.Layer):
    """[N, H, W, C] -> [N, C * sum(L * L)]: for each level L, the maximum over each cell of
    an L x L grid laid over the feature map, level after level, cells row by row, channels
    innermost.

    Cell i of L spans rows floor(i * H / L) to ceil((i + 1) * H / L) (end excluded), and
    the same for columns: the cells cover the map, neighbours share a row where L does not
    divide H, and no cell is empty, even on a map smaller than the grid (its cells then
    repeat rows). Inputs are never padded (the input pipeline batches photos of one shape),
    so every cell holds only the photo's own features.
    """

    def __init__(self, levels: tuple[int, ...] = (1, 2, 4), **kwargs):
        super().__init__(**kwargs)
        if not levels or any(int(level) < 1 for level in levels):
            raise ValueError(f"--config.model.spp_levels={levels!r}: give grid sides of at least 1, e.g. (1, 2, 4)")
        self.levels = tuple(int(level) for level in levels)

    def call(self, features):
        shape = tf.shape(features)
        height, width = shape[1], shape[2]
        cells = []
        for level in self.levels:
            for row in range(level):
                top, bottom = (row * height) // level, -((-(row + 1) * height) // level)
                for column in range(level):
                    left, right = (column * width) // level, -((-(column + 1) * width) // level)
                    cells.append(tf.reduce_max(features[:, top:bottom, left:right, :], axis=[1, 2]))
        return tf.concat(cells, axis=-1)

    @property
    def num_cells(self) -> int:
        return sum(level * level for level in self.levels)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * self.num_cells)

    def get_config(self) -> dict:
        return {**super().get_config(), "levels": self.levels}
