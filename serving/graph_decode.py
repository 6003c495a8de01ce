"""The bytes signature's decoding, in TensorFlow ops only: a file's bytes to the model's pixels.

The SavedModel must need nothing but TensorFlow (TF Serving, a Vertex AI endpoint), yet a
photo's score is what the evaluation computes for it (`trainer.model_input`): the pixels
the dataset's build would have stored for the photo, then the evaluation's resize. So
`from_photo` replays the build (`ava_core.images`, Pillow) in the graph: the JPEG decoded
at the DCT scale Pillow's `draft` picks, the EXIF orientation (TensorFlow has no op for it:
`exif_orientation` reads the tag from the JPEG's APP1 segment with string ops, both TIFF
byte orders), transparency flattened onto white with Pillow's integer blend, the squash
(bilinear; bicubic for models of datasets before 1.1.0) with Pillow's fixed-point
arithmetic, and the stored JPEG, which TensorFlow's libjpeg encodes to the same bytes as
Pillow's. A JPEG, PNG, BMP or grey photo then gets the evaluation's pixels exactly.

16-bit grey PNGs are read at 16 bits and taken to 8 as the build takes them. What
TensorFlow cannot replay is left to the pixel signature, which `serving.predict` feeds
with the build's own function: ICC profiles; CMYK JPEGs and 16-bit colour PNGs, which its
decoders convert to 8 bits their own way; GIF and WebP transparency, which they drop;
formats `tf.io.decode_image` does not read (TIFF, HEIC, AVIF...); and MPO files, which
the build decodes whole where this decodes their first JPEG at a reduced scale. The
differences are measured per kind in `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import functools
from typing import Optional

import tensorflow as tf

from trainer import model_input

ORIENTATION_TAG = 0x0112
# TensorFlow reads WebP from 2.20 (`tf.io.decode_image`, `tf.io.decode_webp`); before, the
# bytes signature answers "Unknown image file format" to one.
READS_WEBP = hasattr(tf.io, "decode_webp")
_MAX_SEGMENTS = 64  # JPEG segments searched for the Exif one (it comes first or second)
_MAX_IFD_ENTRIES = 64  # IFD0 entries searched; tags are sorted and Orientation is among the first
_SHORT, _LONG = 3, 4  # TIFF field types
_EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]  # "Exif\0\0"
_PNG_SIGNATURE = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
_DRAFT_SCALES = (8, 4, 2, 1)  # the DCT scales libjpeg decodes at, as Pillow's `draft` tries them
_PILLOW_PRECISION_BITS = 22  # Pillow's fixed-point resampling: 32 - 8 - 2 bits


def from_photo(encoded: tf.Tensor, contract: model_input.InputContract) -> tf.Tensor:
    """One encoded file (JPEG, PNG, GIF, BMP, WebP) to the uint8 pixels the evaluation
    would feed the model had the photo been built into the dataset (`InputContract.from_photo`)."""
    image = _decode_drafted(encoded, contract.stored_size)
    image = _rgb_on_white(orient(image, exif_orientation(encoded)))
    if contract.stored_size is not None:
        width, height = contract.stored_size
        image = pillow_resize(image, height, width, contract.stored_resampling)
    return contract.from_stored(tf.io.encode_jpeg(image, quality=contract.jpeg_quality))


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """int32 scalar 1..8: the Exif Orientation of a JPEG; 1 when there is none or it is unreadable."""
    tiff = tf.cond(_is_jpeg(encoded), lambda: _exif_tiff_offset(encoded, tf.strings.length(encoded)), lambda: tf.constant(-1))
    return tf.cond(tiff >= 0, lambda: _orientation_in_tiff(encoded, tiff), lambda: tf.constant(1))


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns [H, W, C] as Exif orientation 1..8 says (what Pillow's `ImageOps.exif_transpose` does)."""
    transposed = lambda: tf.transpose(image, [1, 0, 2])
    return tf.switch_case(
        orientation - 1,
        [
            lambda: image,
            lambda: tf.reverse(image, [1]),  # 2: mirrored left to right
            lambda: tf.reverse(image, [0, 1]),  # 3: upside down
            lambda: tf.reverse(image, [0]),  # 4: mirrored top to bottom
            transposed,  # 5
            lambda: tf.reverse(transposed(), [1]),  # 6: turn 90 degrees clockwise
            lambda: tf.reverse(transposed(), [0, 1]),  # 7
            lambda: tf.reverse(transposed(), [0]),  # 8: turn 90 degrees anticlockwise
        ],
    )


def pillow_resize(image: tf.Tensor, height: int, width: int, resampling: str) -> tf.Tensor:
    """uint8 [H, W, 3] resized to [height, width, 3] exactly as `ava_core.images.squash`
    (Pillow's `Image.resize` of 8-bit RGB) resizes with the named filter: its kernel and
    support, its fixed-point weights and rounding, two passes each rounded to 8 bits, and
    their order (from Pillow 13, the vertical pass first when the height shrinks, and by
    more than twice as many pixels as the width, python-pillow/Pillow#9549: the rule found
    to match Pillow 13.0 on every size tried, growing and shrinking, with either filter).

    Each pass is a product with a matrix of integer weights in float64, exact whatever the
    order of the sums (they stay far below 2**53).
    """
    pixels = tf.cast(image, tf.float64)
    in_height, in_width = tf.shape(image)[0], tf.shape(image)[1]
    horizontal = lambda p: _pillow_pass(tf.einsum("xw,hwc->hxc", _pillow_weights(in_width, width, resampling), p))
    vertical = lambda p: _pillow_pass(tf.einsum("yh,hxc->yxc", _pillow_weights(in_height, height, resampling), p))
    vertical_first = tf.logical_and(in_height > height, in_height - height > 2 * (in_width - width))
    resized = tf.cond(vertical_first, lambda: horizontal(vertical(pixels)), lambda: vertical(horizontal(pixels)))
    return tf.cast(resized, tf.uint8)


def _exif_tiff_offset(encoded: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Where the TIFF header of the first Exif APP1 segment starts; -1 if the JPEG has none.

    Walks the segments after SOI (FF marker, big-endian length that counts itself) up to
    the first scan; anything that is not a marker ends the walk.
    """

    def searching(position, tiff, step):
        return tf.logical_and(tf.logical_and(tiff < 0, position >= 0), tf.logical_and(step < _MAX_SEGMENTS, position + 4 <= size))

    def next_segment(position, tiff, step):
        header = _bytes(encoded, position, 4)
        marker, length = header[1], header[2] * 256 + header[3]
        is_segment = tf.logical_and(tf.equal(header[0], 0xFF), tf.logical_and(marker >= 0xC0, tf.not_equal(marker, 0xDA)))
        is_exif = tf.logical_and(tf.equal(marker, 0xE1), tf.reduce_all(tf.equal(_bytes(encoded, position + 4, 6), _EXIF_HEADER)))
        found = tf.logical_and(is_segment, is_exif)
        keep_going = tf.logical_and(tf.logical_and(is_segment, tf.logical_not(is_exif)), length >= 2)
        return (
            tf.where(keep_going, position + 2 + length, -1),
            tf.where(found, position + 10, -1),
            step + 1,
        )

    _, tiff, _ = tf.while_loop(searching, next_segment, (tf.constant(2), tf.constant(-1), tf.constant(0)))
    return tiff


def _orientation_in_tiff(encoded: tf.Tensor, tiff: tf.Tensor) -> tf.Tensor:
    """The Orientation entry of IFD0 of the TIFF structure at `tiff`; 1 if absent or out of 1..8."""
    order = _bytes(encoded, tiff, 2)
    little = tf.reduce_all(tf.equal(order, [0x49, 0x49]))  # "II"; "MM" is big-endian
    valid_order = tf.logical_or(little, tf.reduce_all(tf.equal(order, [0x4D, 0x4D])))

    def number(raw: tf.Tensor) -> tf.Tensor:
        """Unsigned integers from their bytes along the last axis, in the file's byte order."""
        weights = tf.cast(256 ** tf.range(tf.shape(raw)[-1]), tf.int64)
        weights = tf.where(little, weights, tf.reverse(weights, [0]))
        return tf.reduce_sum(tf.cast(raw, tf.int64) * weights, axis=-1)

    header = _bytes(encoded, tiff + 2, 6)
    magic, ifd_offset = number(header[:2]), number(header[2:])
    ifd = tiff + tf.cast(tf.minimum(ifd_offset, 2**30), tf.int32)
    count = number(_bytes(encoded, ifd, 2))
    entries = tf.reshape(_bytes(encoded, ifd + 2, 12 * _MAX_IFD_ENTRIES), [_MAX_IFD_ENTRIES, 12])
    tags, types = number(entries[:, 0:2]), number(entries[:, 2:4])
    values = tf.where(tf.equal(types, _LONG), number(entries[:, 8:12]), number(entries[:, 8:10]))
    matches = tf.logical_and(
        tf.logical_and(tf.equal(tags, ORIENTATION_TAG), tf.logical_or(tf.equal(types, _SHORT), tf.equal(types, _LONG))),
        tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64) < count,
    )
    value = tf.where(tf.reduce_any(matches), values[tf.argmax(tf.cast(matches, tf.int32))], 0)  # the first match
    usable = tf.logical_and(tf.logical_and(valid_order, tf.equal(magic, 42)), tf.logical_and(value >= 1, value <= 8))
    return tf.where(usable, tf.cast(value, tf.int32), 1)


def _is_jpeg(encoded: tf.Tensor) -> tf.Tensor:
    return tf.reduce_all(tf.equal(_bytes(encoded, 0, 2), [0xFF, 0xD8]))


def _bytes(encoded: tf.Tensor, position: tf.Tensor, length: int) -> tf.Tensor:
    """int32 [length]: the bytes at `position`, zeros past the end of the file (never an error)."""
    position = tf.clip_by_value(position, 0, tf.strings.length(encoded))
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, position, length), tf.uint8), tf.int32)
    return tf.pad(raw, [[0, length - tf.shape(raw)[0]]])


def _pillow_pass(sums: tf.Tensor) -> tf.Tensor:
    """Pillow's clip8: (sum + half) >> PRECISION_BITS, clamped to 0..255."""
    scale = float(1 << _PILLOW_PRECISION_BITS)
    return tf.clip_by_value(tf.math.floor((sums + scale / 2) / scale), 0.0, 255.0)


def _pillow_weights(in_size: tf.Tensor, out_size: int, resampling: str) -> tf.Tensor:
    """float64 [out_size, in_size] of Pillow's fixed-point weights (`precompute_coeffs` and
    `normalize_coeffs_8bpc` in its Resample.c), with the same float operations in the same order."""
    in_size_f = tf.cast(in_size, tf.float64)
    scale = in_size_f / out_size
    filterscale = tf.maximum(scale, 1.0)
    kernel, kernel_support = _KERNELS[resampling]
    support = kernel_support * filterscale
    centers = (tf.range(out_size, dtype=tf.float64) + 0.5) * scale
    first = tf.maximum(tf.cast(centers - support + 0.5, tf.int32), 0)  # C's (int) truncates
    count = tf.minimum(tf.cast(centers + support + 0.5, tf.int32), in_size) - first
    taps = tf.range(tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1)
    inside = taps[None, :] < count[:, None]
    distance = (tf.cast(taps[None, :] + first[:, None], tf.float64) - centers[:, None] + 0.5) * (1.0 / filterscale)
    weights = tf.where(inside, kernel(distance), 0.0)
    # Pillow adds the weights one after another: a sequential sum, not a pairwise one.
    total = tf.foldl(lambda accumulated, column: accumulated + column, tf.transpose(weights), tf.zeros([out_size], tf.float64))
    weights = tf.where(total[:, None] != 0.0, weights / total[:, None], weights)
    fixed = weights * float(1 << _PILLOW_PRECISION_BITS)
    fixed = tf.where(fixed < 0, tf.math.ceil(fixed - 0.5), tf.math.floor(fixed + 0.5))  # C's (int)(x -+ 0.5)
    fixed = tf.where(inside, fixed, 0.0)
    # The taps of each output pixel, scattered into a row of the dense matrix.
    rows = tf.broadcast_to(tf.range(out_size)[:, None], tf.shape(fixed))
    columns = tf.minimum(first[:, None] + taps[None, :], in_size - 1)
    indices = tf.stack([tf.boolean_mask(rows, inside), tf.boolean_mask(columns, inside)], axis=1)
    return tf.scatter_nd(indices, tf.boolean_mask(fixed, inside), tf.stack([out_size, in_size]))


def _bilinear(x: tf.Tensor) -> tf.Tensor:
    """Pillow's `bilinear_filter`, the triangle."""
    x = tf.abs(x)
    return tf.where(x < 1.0, 1.0 - x, tf.zeros_like(x))


def _bicubic(x: tf.Tensor) -> tf.Tensor:
    """Pillow's `bicubic_filter`, a = -0.5."""
    a = -0.5
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


# Pillow's filters (Resample.c) by the names of `ava_core.images.RESAMPLING`: kernel, support.
_KERNELS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def _decode_drafted(encoded: tf.Tensor, stored_size: Optional[tuple[int, int]]) -> tf.Tensor:
    """uint8 [H, W, 1..4]: a JPEG at the DCT scale Pillow's `draft` picks for the stored
    size (the largest of 1/8, 1/4, 1/2 that keeps both sides at least that size), any
    other format whole."""

    def jpeg():
        if stored_size is None:
            return _decode_jpeg(encoded, 1)
        shape = tf.image.extract_jpeg_shape(encoded)
        fits = tf.minimum(shape[1] // stored_size[0], shape[0] // stored_size[1])
        scale_index = tf.reduce_sum(tf.cast(fits < tf.constant(_DRAFT_SCALES), tf.int32))
        scale_index = tf.minimum(scale_index, len(_DRAFT_SCALES) - 1)
        return tf.switch_case(scale_index, [functools.partial(_decode_jpeg, encoded, scale) for scale in _DRAFT_SCALES])

    def other():
        whole = lambda: tf.io.decode_image(encoded, channels=0, expand_animations=False)
        return tf.cond(_is_grey16_png(encoded), lambda: _grey16_png(encoded), whole)

    return tf.cond(_is_jpeg(encoded), jpeg, other)


def _is_grey16_png(encoded: tf.Tensor) -> tf.Tensor:
    """A PNG whose header (IHDR, right after the signature) says 16-bit greyscale."""
    header = _bytes(encoded, 0, 26)
    return tf.logical_and(
        tf.reduce_all(tf.equal(header[:8], _PNG_SIGNATURE)), tf.logical_and(tf.equal(header[24], 16), tf.equal(header[25], 0))
    )


def _grey16_png(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 1] as the build takes a 16-bit grey PNG to 8 bits (`ava_core.images`):
    divided by 257 when any value is above 255, else kept, then truncated."""
    values = tf.cast(tf.io.decode_png(encoded, channels=1, dtype=tf.uint16), tf.float64)
    scale = tf.where(tf.reduce_max(values) > 255.0, tf.constant(257.0, tf.float64), tf.constant(1.0, tf.float64))
    return tf.cast(tf.clip_by_value(tf.math.floor(values / scale), 0.0, 255.0), tf.uint8)


def _decode_jpeg(encoded: tf.Tensor, scale: int) -> tf.Tensor:
    return tf.io.decode_jpeg(encoded, channels=0, ratio=scale, dct_method=model_input.JPEG_DCT_METHOD)


def _rgb_on_white(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 1..4] (grey, grey+alpha, RGB, RGBA) to uint8 RGB, transparency flattened
    onto white with Pillow's integer blend (`paste` with a mask: round(x / 255) in integers)."""
    pixels = tf.cast(image, tf.int32)
    grey = lambda: tf.tile(pixels[..., :1], [1, 1, 3])
    opaque = lambda: tf.fill(tf.shape(pixels[..., :1]), 255)
    colour, alpha = tf.switch_case(
        tf.shape(image)[-1] - 1,
        [
            lambda: (grey(), opaque()),
            lambda: (grey(), pixels[..., 1:2]),
            lambda: (pixels[..., :3], opaque()),
            lambda: (pixels[..., :3], pixels[..., 3:4]),
        ],
    )
    blended = 255 * (255 - alpha) + colour * alpha + 128
    shift = tf.bitwise.right_shift
    return tf.cast(shift(shift(blended, 8) + blended, 8), tf.uint8)
