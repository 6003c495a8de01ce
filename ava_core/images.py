"""Validating and re-encoding one photo: bytes in, clean upright sRGB JPEG out.

Pure function, no Beam. AVA's public copies hold empty files, truncated and undecodable
JPEGs and broken EXIF; a scraped image may be huge or in a format nobody planned for.
`reencode` turns every such input into a `RejectedInput` with a reason (whatever the
decoder raised, its type and message are in the detail), and every usable one
(grayscale, CMYK, palette, alpha, 16-bit, EXIF-rotated, with an ICC profile) into an
upright sRGB JPEG of the requested size, with the colours a browser shows.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageCms, ImageOps

from ava_core.rejections import Reason, RejectedInput

# Pillow's own decompression-bomb threshold (~89.5 megapixels).
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
DEFAULT_MIN_SIDE = 32
DEFAULT_JPEG_QUALITY = 95
_WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
# Modes LittleCMS converts from, with the mode of the sRGB result.
_COLOUR_MANAGED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "L": "RGB", "CMYK": "RGB", "LAB": "RGB"}


@dataclasses.dataclass(frozen=True)
class ImagePolicy:
    """What a valid image is and how it is stored.

    resize_to: (width, height) to squash every image to, or None to keep the original
        size (the `full` config, for models that must see the composition).
    """

    resize_to: Optional[tuple[int, int]] = (256, 256)
    min_side: int = DEFAULT_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = DEFAULT_JPEG_QUALITY


@dataclasses.dataclass(frozen=True)
class CleanImage:
    jpeg: bytes
    width: int
    height: int
    source_format: str
    source_mode: str
    exif_rotated: bool
    broken_exif: bool
    icc_converted: bool  # an embedded ICC profile was applied
    broken_icc: bool  # a profile was there but unusable: the pixels were taken as sRGB


def reencode(data: bytes, policy: ImagePolicy = ImagePolicy()) -> CleanImage:
    """Decodes, checks, converts and re-encodes one image.

    The pixel count is checked from the header before anything is decoded, so a
    decompression bomb costs nothing. When shrinking a JPEG, the decoder works at the
    smallest power-of-two scale that still covers the target (draft mode), which is
    most of the speed of the pipeline.

    Raises RejectedInput with EMPTY_FILE, UNDECODABLE, TRUNCATED, TOO_SMALL or
    TOO_MANY_PIXELS, and nothing else: an exception nobody foresaw (decoders of rare
    formats raise NotImplementedError, struct.error, IndexError...) is UNDECODABLE.
    """
    try:
        return _reencode(data, policy)
    except RejectedInput:
        raise
    except Exception as error:  # noqa: BLE001 - one input must never fail a job, whatever it raises
        raise RejectedInput(
            Reason.UNDECODABLE, f"{type(error).__name__} while decoding ({len(data)} bytes): {error}"
        ) from None


def _reencode(data: bytes, policy: ImagePolicy) -> CleanImage:
    if not data:
        raise RejectedInput(Reason.EMPTY_FILE, "the file has 0 bytes")
    image = _open(data, policy.max_pixels)
    width, height = image.size
    if width * height > policy.max_pixels:
        raise RejectedInput(
            Reason.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height} pixels is over the limit of {policy.max_pixels}",
        )
    if min(width, height) < policy.min_side:
        raise RejectedInput(
            Reason.TOO_SMALL, f"{width}x{height} has a side under {policy.min_side} pixels"
        )
    source_format, source_mode = image.format or "unknown", image.mode
    if policy.resize_to is not None and image.format == "JPEG":
        image.draft("RGB", policy.resize_to)
    _load(image)
    image, exif_rotated, broken_exif = _upright(image)
    image, icc_converted, broken_icc = _to_srgb(image)
    if policy.resize_to is not None and image.size != tuple(policy.resize_to):
        image = image.resize(policy.resize_to, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=policy.jpeg_quality)
    return CleanImage(
        jpeg=buffer.getvalue(),
        width=image.width,
        height=image.height,
        source_format=source_format,
        source_mode=source_mode,
        exif_rotated=exif_rotated,
        broken_exif=broken_exif,
        icc_converted=icc_converted,
        broken_icc=broken_icc,
    )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # The size is checked by the caller against the policy's own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise RejectedInput(Reason.TOO_MANY_PIXELS, f"{error} (limit {max_pixels})") from None
    except Image.UnidentifiedImageError:
        raise RejectedInput(
            Reason.UNDECODABLE, f"not an image in any format Pillow reads ({len(data)} bytes, starts {data[:8]!r})"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise RejectedInput(
            Reason.UNDECODABLE, f"not a readable image ({len(data)} bytes): {type(error).__name__}: {error}"
        ) from None


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except OSError as error:
        if "truncated" in str(error) or "premature end" in str(error).lower():
            raise RejectedInput(Reason.TRUNCATED, str(error)) from None
        raise RejectedInput(Reason.UNDECODABLE, f"decoding failed: {type(error).__name__}: {error}") from None


def _upright(image: Image.Image) -> tuple[Image.Image, bool, bool]:
    """Applies the EXIF orientation; broken EXIF leaves the image as stored."""
    try:
        orientation = image.getexif().get(0x0112, 1)
        upright = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
    except Exception:  # noqa: BLE001 - any EXIF parser error means "no usable orientation"
        return image, False, True
    return upright, upright is not image, False


def _to_srgb(image: Image.Image) -> tuple[Image.Image, bool, bool]:
    """Any mode to sRGB RGB; returns (image, icc_converted, broken_icc).

    An embedded ICC profile (Adobe RGB, ProPhoto, Display P3, a CMYK press profile) is
    applied, as a colour-managed viewer does; transparency is flattened onto white.
    """
    image = _to_8bit(image)
    icc = image.info.get("icc_profile")
    icc_converted = broken_icc = False
    if image.mode == "LAB":
        image = ImageCms.profileToProfile(image, _LAB, _SRGB, outputMode="RGB")
    elif icc and image.mode in _COLOUR_MANAGED_MODES:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            image = ImageCms.profileToProfile(
                image, source, _SRGB, outputMode=_COLOUR_MANAGED_MODES[image.mode],
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
            )
            icc_converted = True
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            broken_icc = True
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background, icc_converted, broken_icc
    return image.convert("RGB"), icc_converted, broken_icc


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale to L, palette to RGB(A), keeping the ICC profile."""
    icc = image.info.get("icc_profile")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        scale = 257.0 if pixels.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(pixels / scale, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = pixels.min(initial=0), pixels.max(initial=1)
        image = Image.fromarray(((pixels - low) / max(high - low, 1e-12) * 255).astype(np.uint8), mode="L")
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    if icc:
        image.info["icc_profile"] = icc
    return image
