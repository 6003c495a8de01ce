"""Photos as a user's library holds them, each with the pixels a colour-managed viewer
shows for it, computed here without Pillow's conversions.

The expected pixels come from the definitions: the EXIF orientations from the words of
the Exif standard (which visual side the stored rows and columns hold), for both TIFF
byte orders, with the APP1 segment written by hand; CMYK by (1-C)(1-K); an Adobe RGB
profile by its primaries (`icc_profiles`); 16-bit grey by /257; a palette by looking up
its entries, the transparent one as white; alpha blended onto white. Shared by the tests
of the normalisation (build and predict) and of the exported signatures.
"""

from __future__ import annotations

import dataclasses
import io
import struct

import numpy as np
from PIL import Image, features

import icc_profiles
import image_zoo

from serving import graph_decode

WIDTH, HEIGHT = 96, 64
# TensorFlow's own decoder converts CMYK to RGB with truncating integer arithmetic: the bytes
# signature's pixels then differ from Pillow's (the build's) by half a grey level on average.
TF_CMYK_CONVERSION = frozenset({"jpeg-cmyk"})
# The stored array S of an upright picture U under each orientation, from the Exif
# standard's description of where the stored 0th row and 0th column are seen.
STORED = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],  # 0th row at the top, 0th column on the right
    3: lambda u: u[::-1, ::-1],  # row at the bottom, column on the right
    4: lambda u: u[::-1, :],  # row at the bottom, column on the left
    5: lambda u: u.transpose(1, 0, 2),  # row on the left, column at the top
    6: lambda u: np.rot90(u, 1),  # row on the right, column at the top: S[r, c] = U[c, W-1-r]
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # row on the right, column at the bottom
    8: lambda u: np.rot90(u, -1),  # row on the left, column at the bottom: S[r, c] = U[H-1-c, r]
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: np.ndarray  # float64 [H, W, 3]: the upright sRGB picture
    tolerance: float  # mean absolute error allowed, grey levels: the file's own coding loss
    in_graph: bool  # the bytes signature gets these colours too (TF reads it; no ICC, no GIF/WebP alpha)


def upright() -> np.ndarray:
    """uint8 [HEIGHT, WIDTH, 3]: red grows to the right, green downwards, blue in a disc and
    a ripple, so that every orientation and every colour error shows; smooth, so that a
    JPEG of it is within a grey level or two of it."""
    x = np.linspace(0, 1, WIDTH)[None, :]
    y = np.linspace(0, 1, HEIGHT)[:, None]
    disc = 1 / (1 + np.exp(((x - 0.65) ** 2 + (y - 0.4) ** 2 - 0.04) * 200))
    ripple = np.sin(6 * np.pi * x) * np.sin(4 * np.pi * y)
    channels = [40 + 180 * x + 0 * y, 40 + 180 * y + 0 * x, 60 + 120 * disc + 30 * ripple]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def exif_app1(orientation: int, byte_order: str) -> bytes:
    """An Exif block (as Pillow's `exif=` takes it) with Make, Orientation and an empty Exif IFD pointer."""
    endian = "<" if byte_order == "II" else ">"
    entries = [(0x010F, 2, 4, b"cam\x00"), (0x0112, 3, 1, struct.pack(endian + "HH", orientation, 0))]
    body = struct.pack(endian + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(endian + "HHI", tag, kind, count) + value
    body += struct.pack(endian + "I", 0)
    return b"Exif\x00\x00" + byte_order.encode() + struct.pack(endian + "HI", 42, 8) + body


def oriented_jpeg(orientation: int, byte_order: str = "II", **jpeg_options) -> bytes:
    """The upright picture stored as a camera held that way stores it, with the tag that says so."""
    stored = np.ascontiguousarray(STORED[orientation](upright()))
    options = {"quality": 95, **jpeg_options}
    return image_zoo.encode(Image.fromarray(stored), "JPEG", exif=exif_app1(orientation, byte_order), **options)


def cases() -> dict[str, Case]:
    picture = upright()
    exact = picture.astype(np.float64)
    found = [
        *(Case(f"exif-{o}-{order}", oriented_jpeg(o, order), exact, 1.5, True) for o in STORED for order in ("II", "MM")),
        cmyk_case(picture),
        _adobe_rgb(picture),
        _grey16(),
        _palette(picture),
        _alpha(picture),
        _animated(picture),
        Case("webp-lossless", image_zoo.encode(Image.fromarray(picture), "WEBP", lossless=True), exact, 0.01, graph_decode.READS_WEBP),
        Case("tiff-lzw", image_zoo.encode(Image.fromarray(picture), "TIFF", compression="tiff_lzw"), exact, 0.01, False),
        Case("bmp", image_zoo.encode(Image.fromarray(picture), "BMP"), exact, 0.01, True),
        Case("mpo", image_zoo.encode(Image.fromarray(picture), "MPO", quality=95, save_all=True,
                                     append_images=[Image.fromarray(255 - picture)]), exact, 1.5, True),
        _heic(picture),
    ]
    if features.check("avif"):
        found.append(Case("avif", image_zoo.encode(Image.fromarray(picture), "AVIF", quality=90), exact, 2.0, False))
    return {case.name: case for case in found}


def cmyk_case(picture: np.ndarray) -> Case:
    """Adobe CMYK JPEG (as Photoshop writes); a browser shows (1-C)(1-K) for red and so on."""
    rgb = picture.astype(np.float64) / 255
    k = 1 - rgb.max(axis=-1, keepdims=True) * 0.9
    cmy = (1 - rgb - k) / np.maximum(1 - k, 1e-6)
    cmyk = np.clip(np.concatenate([cmy, k], axis=-1) * 255, 0, 255).round().astype(np.uint8)
    data = image_zoo.encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=98)
    stored = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64) / 255  # what the file holds, coding error and all
    expected = 255 * (1 - stored[..., :3]) * (1 - stored[..., 3:])
    return Case("jpeg-cmyk", data, expected, 0.5, True)


def _adobe_rgb(picture: np.ndarray) -> Case:
    """The picture's values taken as Adobe RGB (1998), tagged with a profile written from its primaries."""
    data = image_zoo.encode(Image.fromarray(picture), "PNG", icc_profile=icc_profiles.icc_profile(icc_profiles.ADOBE_RGB))
    return Case("png-adobe-rgb", data, icc_profiles.convert_to_srgb(icc_profiles.ADOBE_RGB, picture), 0.75, False)


def _grey16() -> Case:
    """A 16-bit greyscale PNG using all 16 bits: a smooth ramp plus a disc."""
    x = np.linspace(0, 1, WIDTH)[None, :]
    y = np.linspace(0, 1, HEIGHT)[:, None]
    values = np.round(65535 * np.clip(0.8 * x + 0.2 * y - 0.3 * ((x - 0.3) ** 2 + (y - 0.5) ** 2 < 0.04), 0, 1)).astype(np.uint16)
    data = image_zoo.encode(Image.fromarray(values), "PNG")
    return Case("png-grey16", data, np.repeat((values / 257.0)[..., None], 3, axis=-1), 0.75, True)


def _palette(picture: np.ndarray) -> Case:
    """A palette image whose most used entry is transparent: that entry is white, the others their colour."""
    paletted = Image.fromarray(picture).quantize(64)
    indices = np.asarray(paletted)
    transparent = int(np.bincount(indices.ravel()).argmax())
    data = image_zoo.encode(paletted, "PNG", transparency=transparent)
    colours = np.array(paletted.getpalette(), np.float64).reshape(-1, 3)
    expected = np.where((indices == transparent)[..., None], 255.0, colours[indices])
    return Case("png-palette-transparent", data, expected, 0.01, True)


def _alpha(picture: np.ndarray) -> Case:
    alpha = np.linspace(0, 255, WIDTH, dtype=np.float64)[None, :].repeat(HEIGHT, 0).round()
    rgba = np.concatenate([picture, alpha[..., None].astype(np.uint8)], axis=-1)
    data = image_zoo.encode(Image.fromarray(rgba, "RGBA"), "PNG")
    expected = picture * (alpha[..., None] / 255) + 255 * (1 - alpha[..., None] / 255)
    return Case("png-rgba", data, expected, 0.5, True)


def _animated(picture: np.ndarray) -> Case:
    """A two-frame GIF: only the first frame counts."""
    first = Image.fromarray(picture).quantize(256)
    data = image_zoo.encode(first, "GIF", save_all=True, append_images=[Image.fromarray(255 - picture).quantize(256)], duration=100)
    colours = np.array(first.getpalette(), np.float64).reshape(-1, 3)
    return Case("gif-animated", data, colours[np.asarray(first)], 0.01, True)


def _heic(picture: np.ndarray) -> Case:
    """HEIC as a phone writes it, stored turned (orientation 6); libheif turns it upright."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    stored = Image.fromarray(np.ascontiguousarray(STORED[6](picture)))
    data = image_zoo.encode(stored, "HEIF", quality=95, exif=exif_app1(6, "MM"))
    return Case("heic-rotated", data, picture.astype(np.float64), 2.0, False)
