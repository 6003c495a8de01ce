"""The model's input contract: the one definition of the pixels a photo reaches the network with.

A photo's score is what the evaluation computes for it. The evaluation reads the dataset,
whose build (`ava_core.images`, Pillow) turned the photo upright, into sRGB RGB, drafted
and squashed it to the stored size (bilinear) and stored it as a JPEG; the evaluation
decodes that JPEG with libjpeg's exact integer IDCT and resizes it to the model's input
(bilinear, antialiased, rounded to uint8 like the training crops). `InputContract` holds
those settings, recorded with every exported model, and every path goes through it:

- `from_stored`: the evaluation's transform of a dataset image (training's crops share
  `decode_stored` and `resize_to_model`).
- `from_photo`: any photo file in Python, for `serving.predict` and the TFLite models it
  feeds: the build's own function, then `from_stored`; bit-identical to the evaluation.
- `serving.graph_decode.from_photo`: the same in TensorFlow ops alone, for the
  SavedModel's bytes signature, which replays the build in the graph.

TensorFlow and `ava_core.images` only: no TFDS, no Beam, so serving imports it freely.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from ava_core import images

# libjpeg's exact integer IDCT, the one Pillow decodes with: TensorFlow's default (the fast
# one) is 1.4 grey levels off on average, up to 13.
JPEG_DCT_METHOD = "INTEGER_ACCURATE"


@dataclasses.dataclass(frozen=True)
class InputContract:
    """How a photo becomes the network's input.

    image_size: the side of a square model's input; ignored when whole_image is set.
    whole_image: (max_side, side_multiple) of a model that takes whole photos at their
        aspect ratio (`whole_image_size`).
    stored_size: (width, height) the dataset's build squashed every photo to, or None
        (the `full` configs keep the original size).
    stored_resampling: the filter of that squash (`ava_core.images.RESAMPLING`).
    jpeg_quality: the quality of the build's stored JPEG.
    """

    image_size: int
    whole_image: Optional[tuple[int, int]] = None
    stored_size: Optional[tuple[int, int]] = images.STORED_SIZE
    stored_resampling: str = images.DEFAULT_RESAMPLING
    jpeg_quality: int = images.DEFAULT_JPEG_QUALITY

    def __post_init__(self):
        if self.stored_resampling not in images.RESAMPLING:
            raise ValueError(f"stored_resampling {self.stored_resampling!r} is none of {sorted(images.RESAMPLING)}")

    @property
    def build_policy(self) -> images.ImagePolicy:
        """The build's normalisation of a photo into the dataset this contract's model was trained on."""
        return images.ImagePolicy(resize_to=self.stored_size, resampling=self.stored_resampling, jpeg_quality=self.jpeg_quality)

    def from_stored(self, encoded: tf.Tensor) -> tf.Tensor:
        """The evaluation's transform of one stored JPEG: uint8 [S, S, 3], or [H, W, 3] sized
        by `whole_image_size` for a whole-photo model."""
        return self.resize(decode_stored(encoded))

    def resize(self, image: tf.Tensor) -> tf.Tensor:
        """uint8 [H, W, 3] of a stored image to the model's input, as the evaluation resizes it."""
        if self.whole_image:
            return resize_whole(image, *self.whole_image)
        return resize_to_model(image, self.image_size)

    def from_photo(self, data: bytes) -> np.ndarray:
        """uint8 pixels of any photo file, exactly as the evaluation would feed them had the
        photo been built into the dataset. Raises what `ava_core.images.decode` raises."""
        stored = images.reencode(data, self.build_policy).jpeg
        return self._from_stored_function(tf.constant(stored)).numpy()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> InputContract:
        """Raises KeyError, TypeError or ValueError when `fields` is not what `to_json` wrote."""
        whole_image, stored_size = fields["whole_image"], fields["stored_size"]
        return cls(
            image_size=int(fields["image_size"]),
            whole_image=tuple(int(value) for value in whole_image) if whole_image else None,
            stored_size=tuple(int(value) for value in stored_size) if stored_size else None,
            # Written from the dataset's 1.1.0 on; models trained before saw a bicubic squash.
            stored_resampling=str(fields.get("stored_resampling", "bicubic")),
            jpeg_quality=int(fields["jpeg_quality"]),
        )

    @functools.cached_property
    def _from_stored_function(self):
        """`from_stored` traced once; its calls release the interpreter lock, so threads share it."""
        return tf.function(self.from_stored, input_signature=[tf.TensorSpec([], tf.string)])


def decode_stored(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] of a dataset image, a JPEG (the build re-encodes every photo)."""
    return tf.io.decode_jpeg(encoded, channels=3, dct_method=JPEG_DCT_METHOD)


def resize_to_model(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 [H, W, 3] to uint8 [image_size, image_size, 3] (`resize_rounded`)."""
    return resize_rounded(image, [image_size, image_size])


def whole_image_size(height: tf.Tensor, width: tf.Tensor, max_side: int, side_multiple: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) of a photo resized for a whole-image model: the longer side max_side,
    the shorter the multiple of side_multiple nearest its aspect ratio (one at least)."""
    if not 1 <= side_multiple <= max_side:
        raise ValueError(
            f"--config.input.side_multiple={side_multiple} must be between 1 and --config.input.max_side={max_side}"
        )
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    short = tf.minimum(height, width) * max_side / tf.maximum(height, width)
    short = tf.cast(tf.minimum(tf.maximum(1.0, tf.round(short / side_multiple)) * side_multiple, max_side), tf.int32)
    long = tf.constant(max_side, tf.int32)
    tall = height >= width
    return tf.where(tall, long, short), tf.where(tall, short, long)


def resize_whole(image: tf.Tensor, max_side: int, side_multiple: int) -> tf.Tensor:
    """uint8 [H, W, 3] resized to its `whole_image_size` (`resize_rounded`)."""
    shape = tf.shape(image)
    return resize_rounded(image, tf.stack(whole_image_size(shape[0], shape[1], max_side, side_multiple)))


def resize_rounded(image: tf.Tensor, size) -> tf.Tensor:
    """uint8 [H, W, 3] to uint8 `size` (height, width): bilinear, antialiased, rounded as
    every pixel the network sees is, in training, evaluation and serving."""
    resized = tf.image.resize(tf.cast(image, tf.float32), size, antialias=True)
    return tf.saturate_cast(tf.round(resized), tf.uint8)
