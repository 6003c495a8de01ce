"""The pixels a photo reaches the network with: the build, `serving.predict` and the bytes
signature's graph against references computed from the definitions (`scoring_cases`), the
graph's replay of the build against the build itself, and predict's pipeline holding a
few batches whatever the number of photos.

No model here: what is scored is tested in test_serving.py.
"""

import functools
import io
import struct
import threading

import numpy as np
import pytest
import tensorflow as tf
import PIL
from PIL import Image

import image_zoo
import scoring_cases
from ava_core import images
from ava_core.rejections import Reason, RejectedInput
from serving import graph_decode, predict, signature
from trainer import model_input

SIZE = 64
_orientation = tf.function(graph_decode.exif_orientation)
FULL = images.ImagePolicy(resize_to=None)
CASES = scoring_cases.cases()
# A square model trained on the 256 squash, and one on whole photos stored at their size.
SQUARE = model_input.InputContract(image_size=SIZE)
WHOLE = model_input.InputContract(image_size=SIZE, whole_image=(80, 16), stored_size=None)
# The build stores a JPEG of the pixels: quality 95 loses up to a few grey levels on
# average where a palette image has hard edges.
REENCODING_ERROR = 4.0
# The pixels predict feeds are rounded to uint8 after the resize.
ROUNDING = 0.5
# TensorFlow's own CMYK conversion (`scoring_cases.TF_CMYK_CONVERSION`), after the
# stored JPEG and the resize: grey levels of the bytes signature's pixels from predict's.
TF_CONVERSION_ERROR = {"mean": 0.75, "max": 8}


@functools.cache
def _graph_decode(contract: model_input.InputContract):
    """The bytes signature's decode for one contract, traced once: a photo's own trace costs a second."""
    return tf.function(lambda encoded: graph_decode.from_photo(encoded, contract), input_signature=[tf.TensorSpec([], tf.string)])


def _shrink(pixels: np.ndarray) -> np.ndarray:
    """Float pixels squashed to SIZE x SIZE, bilinear and antialiased, in float (no rounding)."""
    return np.stack(
        [np.asarray(Image.fromarray(pixels[..., c].astype(np.float32), "F").resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for c in range(3)],
        axis=-1,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_build_and_predict_get_the_pixels_a_colour_managed_viewer_shows(name, tmp_path):
    case = CASES[name]
    decoded = images.decode(case.data, FULL)
    assert decoded.image.mode == "RGB" and decoded.pixels.shape == case.expected.shape
    assert np.abs(decoded.pixels - case.expected).mean() <= case.tolerance
    stored = np.asarray(Image.open(io.BytesIO(images.reencode(case.data, FULL).jpeg)), dtype=np.float64)
    assert np.abs(stored - case.expected).mean() <= case.tolerance + REENCODING_ERROR
    path = tmp_path / "photo"  # no extension: the content decides
    path.write_bytes(case.data)
    contract = model_input.InputContract(image_size=SIZE, stored_size=None)
    scored = predict.prepare(str(path), contract)
    assert isinstance(scored, np.ndarray) and scored.shape == (SIZE, SIZE, 3) and scored.dtype == np.uint8
    assert np.abs(scored - _shrink(case.expected)).mean() <= case.tolerance + REENCODING_ERROR + ROUNDING


def test_the_references_tell_a_wrong_decoding_apart():
    """A photo left sideways or mirrored, a profile ignored, CMYK inverted the naive way or
    alpha put on black would each be off by far more than any tolerance above."""
    picture = scoring_cases.upright().astype(np.float64)
    for orientation in range(2, 9):
        turned = scoring_cases.STORED[orientation](picture)
        assert turned.shape != picture.shape or np.abs(turned - picture).mean() > 20, orientation
    assert np.abs(picture - CASES["png-adobe-rgb"].expected).mean() > 10
    cmyk = np.asarray(Image.open(io.BytesIO(CASES["jpeg-cmyk"].data)), dtype=np.float64)
    naive = np.clip(255 - cmyk[..., :3] - cmyk[..., 3:], 0, 255)
    assert np.abs(naive - CASES["jpeg-cmyk"].expected).mean() > 10
    assert np.abs(0 * picture - CASES["png-rgba"].expected).mean() > 50


@pytest.mark.parametrize("contract", [SQUARE, WHOLE], ids=["square", "whole"])
@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case.in_graph))
def test_the_bytes_signatures_graph_gives_predicts_pixels(name, contract):
    """Exactly, but where TensorFlow's decoders convert to 8 bits their own way."""
    pixels = _graph_decode(contract)(tf.constant(CASES[name].data)).numpy()
    expected = contract.from_photo(CASES[name].data)
    assert pixels.dtype == np.uint8 and pixels.shape == expected.shape
    difference = np.abs(pixels.astype(int) - expected)
    if name in scoring_cases.TF_CMYK_CONVERSION:
        assert 0 < difference.mean() < TF_CONVERSION_ERROR["mean"] and difference.max() <= TF_CONVERSION_ERROR["max"]
    else:
        assert difference.max() == 0, (difference.mean(), difference.max())


# Wide, tall, square; shrinking both ways, one way, or growing; either side of Pillow 13's
# switch to the vertical pass first (height shrinking by more than twice the width's pixels).
PILLOW_SIZES = [(300, 300), (640, 360), (360, 640), (300, 343), (300, 345), (420, 840), (1000, 1743), (1000, 1745),
                (256, 900), (900, 256), (120, 700), (700, 120), (96, 64), (64, 96), (100, 300), (200, 250)]


@pytest.mark.parametrize("resampling", sorted(images.RESAMPLING))
@pytest.mark.parametrize("width, height", PILLOW_SIZES, ids=[f"{w}x{h}" for w, h in PILLOW_SIZES])
def test_the_graphs_squash_is_pillows_to_the_last_bit(width, height, resampling):
    photo = image_zoo.textured(width, height, seed=width * 7 + height)
    pillow = np.asarray(images.squash(Image.fromarray(photo), images.STORED_SIZE, resampling))  # what the build stores
    graph = graph_decode.pillow_resize(tf.constant(photo), images.STORED_SIZE[1], images.STORED_SIZE[0], resampling).numpy()
    np.testing.assert_array_equal(graph, pillow)
    if int(PIL.__version__.split(".")[0]) >= 13:  # the order named is Pillow 13's own
        np.testing.assert_array_equal(pillow, np.asarray(Image.fromarray(photo).resize(images.STORED_SIZE, images.RESAMPLING[resampling])))
    plain = tf.image.resize(photo.astype(np.float32), images.STORED_SIZE[::-1], method=resampling, antialias=True)
    if width != images.STORED_SIZE[0] and height != images.STORED_SIZE[1]:  # two passes: TensorFlow's own resize is often a grey level off
        assert (np.round(plain.numpy()).clip(0, 255) != pillow).mean() > 0.05


@pytest.mark.parametrize("width, height", [(4032, 3024), (1500, 1000), (900, 2400), (520, 300)])
def test_the_graph_decodes_a_large_jpeg_at_the_builds_dct_scale(width, height):
    """Pillow's draft picks 1/8, 1/2, 1/2 and 1/1 of these: the graph must pick the same."""
    buffer = io.BytesIO()
    Image.fromarray(image_zoo.textured(width, height, seed=width)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    graph = _graph_decode(SQUARE)(tf.constant(data)).numpy()
    np.testing.assert_array_equal(graph, SQUARE.from_photo(data))


def test_a_model_exported_before_the_filter_was_recorded_is_fed_the_bicubic_squash_it_was_trained_on():
    """Exports of datasets before 1.1.0 have no `stored_resampling`: those builds squashed bicubic."""
    fields = SQUARE.to_json()
    del fields["stored_resampling"]
    earlier = model_input.InputContract.from_json(fields)
    assert earlier.stored_resampling == "bicubic" and SQUARE.stored_resampling == "bilinear"
    buffer = io.BytesIO()
    Image.fromarray(image_zoo.textured(640, 360, seed=3)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    graph = _graph_decode(earlier)(tf.constant(data)).numpy()
    np.testing.assert_array_equal(graph, earlier.from_photo(data))
    assert np.abs(earlier.from_photo(data).astype(int) - SQUARE.from_photo(data)).max() > 0
    with pytest.raises(ValueError, match="lanczos"):
        model_input.InputContract.from_json({**fields, "stored_resampling": "lanczos"})


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_exif_orientation_is_read_in_the_graph(orientation, byte_order):
    data = scoring_cases.oriented_jpeg(orientation, byte_order)
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == orientation  # Pillow reads the same tag
    assert int(_orientation(tf.constant(data))) == orientation
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    behind_xmp = data[:2] + b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp + data[2:]
    assert int(_orientation(tf.constant(behind_xmp))) == orientation


def _with_exif(exif: bytes) -> bytes:
    plain = scoring_cases.oriented_jpeg(1)
    start = plain.index(b"\xff\xe1")
    length = struct.unpack(">H", plain[start + 2 : start + 4])[0]
    return plain[:start] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + plain[start + 2 + length :]


@pytest.mark.parametrize(
    "data",
    [
        scoring_cases.oriented_jpeg(1)[:40],  # cut inside the Exif segment
        _with_exif(scoring_cases.exif_app1(6, "II").replace(b"II*\x00", b"II+\x00")),  # not TIFF's magic 42
        _with_exif(scoring_cases.exif_app1(6, "II").replace(b"II", b"XX", 1)),  # no byte order
        _with_exif(scoring_cases.exif_app1(6, "MM")[:-20]),  # IFD cut short
        _with_exif(scoring_cases.exif_app1(9, "MM")),  # no such orientation
        _with_exif(b"Exif\x00\x00MM\x00\x2a\x7f\xff\xff\xff"),  # IFD far past the end
        CASES["png-rgba"].data,
        b"",
        bytes(range(256)) * 4,
    ],
    ids=["truncated", "bad-magic", "bad-byte-order", "short-ifd", "orientation-9", "offset-past-end", "png", "empty", "noise"],
)
def test_broken_or_absent_exif_means_upright_and_never_an_error(data):
    assert int(_orientation(tf.constant(data))) == 1


def test_a_long_orientation_field_is_read_as_pillow_reads_it():
    exif = scoring_cases.exif_app1(8, "II").replace(struct.pack("<HHI", 0x0112, 3, 1), struct.pack("<HHI", 0x0112, 4, 1))
    data = _with_exif(exif)
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 8
    assert int(_orientation(tf.constant(data))) == 8


@pytest.mark.parametrize(
    "data, not_an_image",
    [
        (b"", True),
        (b"rank,path\n1,a.jpg\n", True),
        (b"<?xml version='1.0'?><plist/>", True),  # an iPhone .AAE sidecar
        (CASES["exif-1-II"].data[:1200], False),  # a photo, cut short
        (CASES["exif-1-II"].data[:100], False),  # cut inside its header
    ],
    ids=["empty", "text", "sidecar", "truncated", "header-cut"],
)
def test_files_that_are_no_image_are_told_from_broken_images(data, not_an_image):
    with pytest.raises(RejectedInput) as error:
        images.decode(data, SQUARE.build_policy)
    assert isinstance(error.value, images.NotAnImage) == not_an_image, error.value
    if not_an_image:
        assert error.value.reason in (Reason.EMPTY_FILE, Reason.UNDECODABLE)


@pytest.mark.parametrize("whole_image", [None, (16, 1)], ids=["square", "seven-shapes"])
def test_scoring_10000_photos_holds_a_few_batches_and_fills_every_batch(monkeypatch, whole_image):
    """With the decoder and the model faked, count the photos decoded and not yet scored;
    photos of seven shapes in turn (a whole-photo model's) must not pile up by shape."""
    batch_size, count = 16, 10_000
    lock = threading.Lock()
    live = {"now": 0, "peak": 0}
    calls = []

    def fake_prepare(path, contract):
        index = int(path)
        if index % 97 == 0:
            return predict.Failure(path, "truncated: cut short")
        if index % 89 == 0:
            return predict.Skipped(path)
        with lock:
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
        side = contract.image_size if contract.whole_image is None else 8 + index % 7
        return np.full((side, 8, 3), index % 251, np.uint8)

    def fake_score(pixels):
        with lock:
            live["now"] -= int(pixels.shape[0])
        calls.append(int(pixels.shape[0]))
        mean = tf.reduce_mean(tf.cast(pixels, tf.float32), axis=[1, 2, 3])
        return {signature.DISTRIBUTION: tf.zeros([pixels.shape[0], 10]), signature.MEAN: mean, signature.STD: mean * 0}

    monkeypatch.setattr(predict, "prepare", fake_prepare)
    model = predict.PixelModel(score=fake_score, contract=model_input.InputContract(8, whole_image), saved_model=None)
    report = predict.score_files(model, [str(i) for i in range(count)], batch_size, progress=False)

    failed = [i for i in range(count) if i % 97 == 0]
    skipped = [i for i in range(count) if i % 89 == 0 and i % 97]
    assert [f.path for f in report.failures] == [str(i) for i in failed]
    assert report.not_images == [str(i) for i in skipped]
    assert len(report.scores) == sum(calls) == count - len(failed) - len(skipped)
    if whole_image is None:
        assert all(size == batch_size for size in calls[:-1]) and 0 < calls[-1] <= batch_size
    else:  # the largest group is scored when the window fills: never fewer than a seventh of it
        assert all(size >= predict.BATCHES_AHEAD * batch_size // 7 for size in calls[:-7]), calls
    # In the pool BATCHES_AHEAD batches; waiting for their batch, less than one of a square
    # model's, at most BATCHES_AHEAD of photos of many shapes.
    waiting = 1 if whole_image is None else predict.BATCHES_AHEAD
    assert live["peak"] <= (predict.BATCHES_AHEAD + waiting) * batch_size, live
    means = [s.mean for s in report.scores]
    assert means == sorted(means, reverse=True) and {s.mean for s in report.scores if s.path == "250"} == {250.0}
