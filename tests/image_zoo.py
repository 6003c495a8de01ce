"""Image files of many formats and modes, generated with Pillow, and seeded mutations of them.

Shared by the validator's tests: every mode Pillow can save, the container formats a
photo library holds (TIFF with several compressions, WebP, ICO, multi-frame GIF and
TIFF, MPO, JPEG 2000, AVIF where Pillow has it), and broken variants: truncations,
flipped bytes, forged headers and huge declared sizes.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Iterator

import numpy as np
from PIL import Image, features


def photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A picture with structure (gradients, a disc, noise), so a blank result is detectable."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.05).astype(float)
    channels = [x * 255 + 0 * y, y * 255 + 0 * x, 255 * disc]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def textured(width: int, height: int, seed: int) -> np.ndarray:
    """uint8 [height, width, 3] with a photo's fine detail: gradients, edges and grain."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, width, dtype=np.float32), np.linspace(0, 1, height, dtype=np.float32))
    channels = [110 + 90 * np.sin((13 + 3 * k) * x + (7 + k) * y + k) * np.cos(5 * x * y + k) for k in range(3)]
    disc = ((x - 0.3 - 0.1 * seed % 3) ** 2 + (y - 0.6) ** 2 < 0.03)[..., None] * 60
    grain = rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    return np.clip(np.stack(channels, axis=-1) + disc + grain, 0, 255).astype(np.uint8)


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def zoo() -> dict[str, bytes]:
    """name -> file bytes of a valid image, one per (format, mode) worth having."""
    base = photo()
    grey = base.convert("L")
    files = {
        "jpeg-rgb": encode(base, "JPEG"),
        "jpeg-l": encode(grey, "JPEG"),
        "jpeg-cmyk": encode(base.convert("CMYK"), "JPEG"),
        "jpeg-progressive": encode(base, "JPEG", progressive=True),
        "png-1": encode(base.convert("1"), "PNG"),
        "png-l": encode(grey, "PNG"),
        "png-la": encode(Image.merge("LA", (grey, grey.point(lambda v: 255 - v))), "PNG"),
        "png-p-transparency": encode(base.convert("P"), "PNG", transparency=3),
        "png-i16": encode(Image.fromarray(np.asarray(grey, np.uint16) * 257), "PNG"),
        "png-rgba": encode(base.convert("RGBA"), "PNG"),
        "tiff-i32": encode(Image.fromarray(np.asarray(grey, np.int32) * 1000), "TIFF"),
        "tiff-f": encode(Image.fromarray(np.asarray(grey, np.float32) / 255), "TIFF"),
        "tiff-raw": encode(base, "TIFF"),
        "tiff-lzw": encode(base, "TIFF", compression="tiff_lzw"),
        "tiff-deflate": encode(base, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits": encode(base, "TIFF", compression="packbits"),
        "tiff-jpeg": encode(base, "TIFF", compression="jpeg"),
        "tiff-cmyk": encode(base.convert("CMYK"), "TIFF"),
        "tiff-ycbcr": encode(base.convert("YCbCr"), "TIFF", compression="jpeg"),
        "tiff-lab": encode(base.convert("LAB") if _can_convert(base, "LAB") else _lab(base), "TIFF"),
        "tiff-multipage": encode(base, "TIFF", save_all=True, append_images=[grey.convert("RGB")]),
        "gif-animated": encode(base.convert("P"), "GIF", save_all=True, append_images=[grey.convert("P")], duration=100),
        "gif-transparent": encode(base.convert("P"), "GIF", transparency=0),
        "bmp": encode(base, "BMP"),
        "ico": encode(base, "ICO", sizes=[(64, 64)]),
        "webp-lossy": encode(base, "WEBP", quality=80),
        "webp-lossless-rgba": encode(base.convert("RGBA"), "WEBP", lossless=True),
        "mpo": encode(base, "MPO", save_all=True, append_images=[grey.convert("RGB")]),
        "jpeg2000": encode(base, "JPEG2000"),
        "ppm": encode(base, "PPM"),
        "tga": encode(base, "TGA"),
        "pcx": encode(base, "PCX"),
        "hsv-as-tiff": encode(Image.fromarray(np.asarray(base.convert("HSV"))), "TIFF"),
    }
    if features.check("avif"):
        files["avif"] = encode(base, "AVIF")
    return files


def modes_in_memory() -> dict[str, Image.Image]:
    """Images in every mode Pillow supports, for the conversion that does not go through a file."""
    base = photo()
    grey = base.convert("L")
    return {
        "1": base.convert("1"), "L": grey, "LA": grey.convert("LA"), "P": base.convert("P"),
        "I;16": Image.fromarray(np.asarray(grey, np.uint16) * 257), "I": grey.convert("I"), "F": grey.convert("F"),
        "RGB": base, "RGBA": base.convert("RGBA"), "CMYK": base.convert("CMYK"), "YCbCr": base.convert("YCbCr"),
        "LAB": _lab(base), "HSV": base.convert("HSV"),
    }


def mutations(data: bytes, count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """Seeded broken variants of one file: (kind, bytes)."""
    rng = np.random.default_rng(seed)
    kinds = ("truncate", "flip", "splice", "zero_run", "forge_size")
    for k in range(count):
        kind = kinds[k % len(kinds)]
        buffer = bytearray(data)
        if kind == "truncate":
            buffer = buffer[: int(rng.integers(0, len(buffer)))]
        elif kind == "flip":
            for position in rng.integers(0, len(buffer), size=int(rng.integers(1, 16))):
                buffer[position] ^= 1 << int(rng.integers(0, 8))
        elif kind == "splice":
            position = int(rng.integers(0, len(buffer)))
            buffer[position:position] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == "zero_run":
            start = int(rng.integers(0, len(buffer)))
            buffer[start : start + int(rng.integers(1, 256))] = bytes(min(256, len(buffer) - start))
        else:
            buffer = bytearray(forge_size(bytes(buffer), int(rng.integers(1, 1 << 16)), int(rng.integers(1, 1 << 16))))
        yield kind, bytes(buffer)


def forge_size(data: bytes, width: int, height: int) -> bytes:
    """The same file with its header claiming width x height (PNG, JPEG, GIF, BMP); others unchanged."""
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        ihdr = data[12:16] + struct.pack(">II", width, height) + data[24:29]
        return data[:16] + ihdr[4:] + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]
    if data.startswith(b"\xff\xd8"):
        position = data.find(b"\xff\xc0")
        if position < 0:
            position = data.find(b"\xff\xc2")
        if position > 0 and position + 9 <= len(data):
            return data[: position + 5] + struct.pack(">HH", height, width) + data[position + 9 :]
    if data.startswith(b"GIF8") and len(data) >= 10:
        return data[:6] + struct.pack("<HH", width, height) + data[10:]
    if data.startswith(b"BM") and len(data) >= 26:
        return data[:18] + struct.pack("<ii", width, height) + data[26:]
    return data


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose header claims width x height: a decompression bomb's signature."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _can_convert(image: Image.Image, mode: str) -> bool:
    try:
        image.convert(mode)
    except ValueError:
        return False
    return True


def _lab(image: Image.Image) -> Image.Image:
    from PIL import ImageCms

    return ImageCms.profileToProfile(
        image, ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), outputMode="LAB"
    )
