"""The bytes signature's decoding, in TensorFlow ops only: a file's bytes to the model's pixels.

The SavedModel must need nothing but TensorFlow (TF Serving, a Vertex AI endpoint), and
TensorFlow has no op for EXIF orientation: `exif_orientation` reads the tag from the
JPEG's APP1 segment with string ops (both TIFF byte orders), so a phone photo stored
sideways is scored upright, as the build stores it. Transparency is flattened onto white
as the build does (`ava_core.images`). What TensorFlow cannot do in a graph is left to
the pixel signature, which takes pixels a client normalised itself (`serving.predict`
does, with the build's own function): ICC profiles, and the formats `tf.io.decode_image`
does not read (TIFF, HEIC, AVIF...); GIF and WebP transparency, which TensorFlow's
decoders drop.
"""

from __future__ import annotations

import tensorflow as tf

from trainer import input_pipeline

ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 64  # JPEG segments searched for the Exif one (it comes first or second)
_MAX_IFD_ENTRIES = 64  # IFD0 entries searched; tags are sorted and Orientation is among the first
_SHORT, _LONG = 3, 4  # TIFF field types
_EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]  # "Exif\0\0"


def decode_for_model(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (JPEG, PNG, GIF, BMP, WebP) to float32 [size, size, 3] in 0..255:
    decoded, flattened onto white, squashed to the model size, turned upright.

    The orientation is applied after the resize, to the small square: flips and
    transposes commute with a separable symmetric resize, so the pixels are those of
    rotating first, at a fraction of the cost.
    """
    resized = tf.image.resize(_rgb_on_white(_decode(encoded)), [image_size, image_size], antialias=True)
    return orient(tf.ensure_shape(resized, [image_size, image_size, 3]), exif_orientation(encoded))


def decode_whole_for_model(encoded: tf.Tensor, max_side: int, side_multiple: int) -> tf.Tensor:
    """One encoded image to float32 [H, W, 3] in 0..255 for a whole-photo model: decoded,
    flattened onto white, turned upright, then resized as the evaluation resizes it
    (`input_pipeline.whole_image_size` of the upright shape). Turned first here, since
    the shape the photo is resized to depends on which way up it is."""
    upright = orient(_rgb_on_white(_decode(encoded)), exif_orientation(encoded))
    return input_pipeline.resize_whole(upright, max_side, side_multiple)


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


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    return tf.cond(
        _is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=0, dct_method=input_pipeline.JPEG_DCT_METHOD),
        lambda: tf.io.decode_image(encoded, channels=0, expand_animations=False),
    )


def _rgb_on_white(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 1..4] (grey, grey+alpha, RGB, RGBA) to float32 RGB, transparency on white."""
    pixels = tf.cast(image, tf.float32)
    grey = lambda: tf.tile(pixels[..., :1], [1, 1, 3])
    colour, alpha = tf.switch_case(
        tf.shape(image)[-1] - 1,
        [
            lambda: (grey(), tf.fill(tf.shape(pixels[..., :1]), 255.0)),
            lambda: (grey(), pixels[..., 1:2]),
            lambda: (pixels[..., :3], tf.fill(tf.shape(pixels[..., :1]), 255.0)),
            lambda: (pixels[..., :3], pixels[..., 3:4]),
        ],
    )
    return colour * (alpha / 255.0) + 255.0 * (1.0 - alpha / 255.0)


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
