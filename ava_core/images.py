"""The one image normalisation: any file's bytes to upright sRGB RGB pixels, shared by the
dataset build and by scoring.

Pure functions, no Beam, no TensorFlow. `decode` turns a file of any format Pillow reads
(grayscale, CMYK, palette, alpha, 16-bit, EXIF-rotated, with an ICC profile, the first
frame of an animation; HEIC too where pillow-heif is installed) into upright sRGB RGB
pixels with the colours a browser shows, resized as the policy says. The build stores
them with `reencode` (a JPEG for the `ava` dataset); scoring (`trainer.model_input`)
re-encodes a photo the same way before the evaluation's own transform, so a photo is
scored from the very pixels the build would have stored for it and a score means what
the training data meant.

AVA's public copies hold empty files, truncated and undecodable JPEGs and broken EXIF; a
scraped image may be huge or in a format nobody planned for. Every such input becomes a
`RejectedInput` with a reason (whatever the decoder raised, its type and message are in
the detail), and bytes that are no image at all (empty, or no format Pillow reads) a
`NotAnImage`, its subclass, so that scoring can tell a folder's stray files from its
broken photos.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import warnings
from typing import Iterator, Optional

import numpy as np
from PIL import Image, ImageCms, ImageOps

from ava_core.rejections import Reason, RejectedInput

with contextlib.suppress(ImportError):  # the `heic` extra: HEIC/HEIF, what phones store; Pillow reads AVIF itself
    import pillow_heif

    pillow_heif.register_heif_opener()

# Pillow's own decompression-bomb threshold (~89.5 megapixels).
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
DEFAULT_MIN_SIDE = 32
DEFAULT_JPEG_QUALITY = 95
STORED_SIZE = (256, 256)  # (width, height) NIMA's dataset squashes every photo to
# Pillow's filters a squash can use, by the name a model's input contract records. Both are
# antialiased: Pillow widens the kernel by the shrink factor.
RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
# Bilinear has half bicubic's taps: the squash was over half of a photo's CPU time in the
# build. The `ava` dataset squashed bicubic before its version 1.1.0.
DEFAULT_RESAMPLING = "bilinear"
_WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
# Modes LittleCMS converts from, with the mode of the sRGB result.
_COLOUR_MANAGED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "L": "RGB", "CMYK": "RGB", "LAB": "RGB"}
_SIGNATURE_BYTES = 16  # what Pillow's format plugins look at to claim a file
# Distinct embedded profiles whose transforms are kept: a library holds a handful (sRGB,
# Display P3, Adobe RGB, a press CMYK), and building one costs more than applying it.
_CACHED_TRANSFORMS = 32


@dataclasses.dataclass(frozen=True)
class ImagePolicy:
    """What a valid image is and how it is sized.

    resize_to: (width, height) to squash every image to (a larger JPEG is first decoded
        at the smallest DCT scale that still covers it, Pillow's `draft`), or None to keep
        the original size (the `full` config, for models that must see the composition).
        Scoring replays exactly this (`trainer.model_input`), in the graph too
        (`serving.graph_decode`), so neither may change without the other.
    resampling: the squash's filter, a key of RESAMPLING.
    """

    resize_to: Optional[tuple[int, int]] = STORED_SIZE
    resampling: str = DEFAULT_RESAMPLING
    min_side: int = DEFAULT_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = DEFAULT_JPEG_QUALITY

    def __post_init__(self):
        if self.resampling not in RESAMPLING:
            raise ValueError(f"resampling {self.resampling!r} is none of Pillow's filters named here: {sorted(RESAMPLING)}")


class NotAnImage(RejectedInput):
    """The bytes are no image (empty, or in no format Pillow reads): the build rejects
    them as any other bad input, scoring lists them apart from the photos it could not read."""


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # mode RGB, upright, sRGB, sized by the policy
    source_format: str
    source_mode: str
    exif_rotated: bool
    broken_exif: bool
    icc_converted: bool  # an embedded ICC profile was applied
    broken_icc: bool  # a profile was there but unusable: the pixels were taken as sRGB

    @property
    def pixels(self) -> np.ndarray:
        """uint8 [height, width, 3]."""
        return np.asarray(self.image)


@dataclasses.dataclass(frozen=True)
class CleanImage:
    jpeg: bytes
    width: int
    height: int
    source_format: str
    source_mode: str
    exif_rotated: bool
    broken_exif: bool
    icc_converted: bool
    broken_icc: bool


def decode(data: bytes, policy: ImagePolicy = ImagePolicy()) -> DecodedImage:
    """Decodes, checks and converts one image to upright sRGB RGB, sized by the policy.

    The pixel count is checked from the header before anything is decoded, so a
    decompression bomb costs nothing. When shrinking a JPEG, the decoder works at the
    smallest power-of-two scale that still covers the target (draft mode), which is
    most of the speed of the build and of scoring.

    Raises NotAnImage (EMPTY_FILE, UNDECODABLE), or RejectedInput with UNDECODABLE,
    TRUNCATED, TOO_SMALL or TOO_MANY_PIXELS, and nothing else: an exception nobody
    foresaw (decoders of rare formats raise NotImplementedError, struct.error,
    IndexError...) is UNDECODABLE.
    """
    with _one_input(data):
        return _decode(data, policy)


def reencode(data: bytes, policy: ImagePolicy = ImagePolicy()) -> CleanImage:
    """`decode`, then the JPEG the `ava` dataset stores. Raises as `decode` does."""
    decoded = decode(data, policy)
    with _one_input(data):
        buffer = io.BytesIO()
        decoded.image.save(buffer, format="JPEG", quality=policy.jpeg_quality)
    return CleanImage(
        jpeg=buffer.getvalue(),
        width=decoded.image.width,
        height=decoded.image.height,
        source_format=decoded.source_format,
        source_mode=decoded.source_mode,
        exif_rotated=decoded.exif_rotated,
        broken_exif=decoded.broken_exif,
        icc_converted=decoded.icc_converted,
        broken_icc=decoded.broken_icc,
    )


@contextlib.contextmanager
def _one_input(data: bytes) -> Iterator[None]:
    """Whatever decoding one input raises becomes its RejectedInput."""
    try:
        yield
    except RejectedInput:
        raise
    except Exception as error:  # noqa: BLE001 - one input must never fail a job, whatever it raises
        raise RejectedInput(
            Reason.UNDECODABLE, f"{type(error).__name__} while decoding ({len(data)} bytes): {error}"
        ) from None


def squash(image: Image.Image, size: tuple[int, int], resampling: str = DEFAULT_RESAMPLING) -> Image.Image:
    """Pillow's resize to (width, height) with the named filter, as its two passes, each
    rounded to 8 bits, in Pillow 13's order: vertical first when the height shrinks, and by
    more than twice as many pixels as the width (python-pillow/Pillow#9549). Pillow before
    13 (all that Python 3.10 has) always runs the horizontal pass first; naming the order
    keeps the stored pixels the same under every Pillow, and the same as
    `serving.graph_decode` computes."""
    width, height = size
    in_width, in_height = image.size
    kernel = RESAMPLING[resampling]
    if in_height > height and in_height - height > 2 * (in_width - width):
        return image.resize((in_width, height), kernel).resize(size, kernel)
    return image.resize((width, in_height), kernel).resize(size, kernel)


def _decode(data: bytes, policy: ImagePolicy) -> DecodedImage:
    if not data:
        raise NotAnImage(Reason.EMPTY_FILE, "the file has 0 bytes")
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
        image = squash(image, tuple(policy.resize_to), policy.resampling)
    return DecodedImage(
        image=image,
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
        claimed = _format_claiming(data)
        if claimed:
            raise RejectedInput(
                Reason.UNDECODABLE, f"starts as {claimed} but Pillow cannot read its header ({len(data)} bytes)"
            ) from None
        raise NotAnImage(
            Reason.UNDECODABLE, f"not an image in any format Pillow reads ({len(data)} bytes, starts {data[:8]!r})"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise RejectedInput(
            Reason.UNDECODABLE, f"not a readable image ({len(data)} bytes): {type(error).__name__}: {error}"
        ) from None


def _format_claiming(data: bytes) -> str | None:
    """The format whose signature the file starts with, though Pillow could not open it:
    a photo cut inside its header is a broken image, not a stray file."""
    prefix = data[:_SIGNATURE_BYTES]
    return next((name for name, (_, accept) in Image.OPEN.items() if accept and accept(prefix)), None)


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
        image = _transform(None, "LAB", "RGB").apply(image)
    elif icc and image.mode in _COLOUR_MANAGED_MODES:
        try:
            image = _transform(icc, image.mode, _COLOUR_MANAGED_MODES[image.mode]).apply(image)
            icc_converted = True
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            broken_icc = True
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background, icc_converted, broken_icc
    # convert() of an RGB image would copy it: a few percent of a photo's time in the build.
    return (image if image.mode == "RGB" else image.convert("RGB")), icc_converted, broken_icc


@functools.lru_cache(maxsize=_CACHED_TRANSFORMS)
def _transform(icc: bytes | None, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    """The LittleCMS transform from an embedded profile (None: CIE LAB) to sRGB, perceptual.

    Kept per profile: building one costs several times applying it to a whole photo.
    Without LittleCMS's one-pixel cache a transform is shared safely by decoding threads.
    """
    source = _LAB if icc is None else ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(
        source, _SRGB, in_mode, out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL, flags=ImageCms.Flags.NOCACHE
    )


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
