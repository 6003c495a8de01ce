"""The image validator over a zoo of real broken and unusual files, generated here."""

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from ava_core import images
from ava_core.rejections import Reason, RejectedInput

POLICY = images.ImagePolicy(resize_to=(64, 64))
FULL = images.ImagePolicy(resize_to=None)


def _encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _gradient(width=120, height=80) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), "RGB")


def _decoded(clean: images.CleanImage) -> Image.Image:
    image = Image.open(io.BytesIO(clean.jpeg))
    assert image.format == "JPEG" and image.mode == "RGB"
    return image


def _png_with_size(width: int, height: int) -> bytes:
    """A real PNG whose header claims width x height: a decompression bomb's signature."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_rgb_jpeg_is_resized_to_the_policy_size():
    clean = images.reencode(_encode(_gradient()), POLICY)
    assert (clean.width, clean.height) == (64, 64)
    assert _decoded(clean).size == (64, 64)
    assert (clean.source_format, clean.source_mode, clean.exif_rotated) == ("JPEG", "RGB", False)


def test_full_policy_keeps_the_original_size():
    clean = images.reencode(_encode(_gradient(150, 90)), FULL)
    assert _decoded(clean).size == (150, 90)


def test_draft_decoding_matches_a_full_decode_resize():
    source = _gradient(1024, 768)
    clean = images.reencode(_encode(source, quality=95), images.ImagePolicy(resize_to=(256, 256)))
    reference = np.asarray(source.resize((256, 256), Image.Resampling.BILINEAR), dtype=np.float64)
    got = np.asarray(_decoded(clean), dtype=np.float64)
    assert np.abs(got - reference).mean() < 3.0


@pytest.mark.parametrize(
    "mode, fmt, extra",
    [
        ("L", "JPEG", {}),
        ("CMYK", "JPEG", {}),
        ("RGBA", "PNG", {}),
        ("LA", "PNG", {}),
        ("P", "PNG", {}),
        ("P", "GIF", {"transparency": 0}),
        ("I;16", "PNG", {}),
        ("1", "PNG", {}),
    ],
)
def test_unusual_modes_become_rgb(mode, fmt, extra):
    source = _gradient().convert(mode) if mode != "I;16" else Image.fromarray(
        np.asarray(_gradient().convert("L"), dtype=np.uint16) * 257
    )
    clean = images.reencode(_encode(source, fmt, **extra), FULL)
    decoded = _decoded(clean)
    assert decoded.size == (120, 80)
    assert clean.source_mode == source.mode
    assert np.asarray(decoded).std() > 10  # the picture survived, not a blank


def test_transparency_is_flattened_onto_white():
    transparent = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    pixels = np.asarray(_decoded(images.reencode(_encode(transparent, "PNG"), FULL)), dtype=int)
    assert (pixels > 245).all()


def test_exif_rotated_photo_is_stored_upright():
    upright = Image.new("RGB", (120, 80), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 30, 20))  # red marker top-left when seen upright
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    clean = images.reencode(_encode(stored, exif=exif), FULL)
    pixels = np.asarray(_decoded(clean), dtype=int)
    assert clean.exif_rotated and pixels.shape == (80, 120, 3)
    assert pixels[5, 5, 0] > 200 and pixels[5, 5, 2] < 60
    assert pixels[-5, -5, 2] > 200


def test_broken_exif_keeps_the_image():
    data = _encode(_gradient())
    broken_app1 = b"\xff\xe1\x00\x10Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff"
    clean = images.reencode(data[:2] + broken_app1 + data[2:], FULL)
    assert _decoded(clean).size == (120, 80)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", Reason.EMPTY_FILE),
        (bytes(range(256)) * 40, Reason.UNDECODABLE),
        (b"<html>404 Not Found</html>", Reason.UNDECODABLE),
        (_encode(_gradient(400, 300))[:2000], Reason.TRUNCATED),
        (_encode(_gradient(20, 20)), Reason.TOO_SMALL),
        (_png_with_size(50_000, 50_000), Reason.TOO_MANY_PIXELS),
        (_png_with_size(200_000, 200_000), Reason.TOO_MANY_PIXELS),
    ],
    ids=["empty", "random-bytes", "html", "truncated", "too-small", "bomb", "huge-bomb"],
)
def test_broken_inputs_are_rejected_with_their_reason(data, reason):
    with pytest.raises(RejectedInput) as error:
        images.reencode(data, POLICY)
    assert error.value.reason == reason, error.value.detail


def test_bomb_is_rejected_without_decoding():
    tracemalloc.start()
    with pytest.raises(RejectedInput):
        images.reencode(_png_with_size(60_000, 60_000), POLICY)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * 2**20  # 3.6 gigapixels decoded would take gigabytes


def test_pixel_limit_comes_from_the_policy():
    data = _encode(_gradient(200, 200))
    with pytest.raises(RejectedInput, match="over the limit of 10000"):
        images.reencode(data, images.ImagePolicy(max_pixels=10_000))
