"""The HTML pages people read: the ranking of scored photos (`serving.predict --html`), the
evaluation's report (`eval/report.html`) and the build's (`report.html` beside stats.json).

Plain HTML and CSS from the Jinja2 templates in `ava_core/templates`, opened from disk in
any browser: no server, no network, no framework; a few lines of script sort and filter
the ranking. Thumbnails are small WebP files in a folder beside a page that shows many, or
data: URIs in a page that shows a few and must travel alone (a bucket's build report).
"""

from __future__ import annotations

import base64
import functools
import io
import os
from typing import IO, Sequence

import jinja2
import numpy as np
from PIL import Image

# WebP, which every current browser shows: a 144-pixel thumbnail of a detailed photo is
# about 3.5 kB, two thirds of a JPEG of its quality, so 1,000 photos and their page stay
# under 5 MB.
THUMBNAIL_SIDE = 144  # pixels: the longer side
THUMBNAIL_QUALITY = 70
THUMBNAIL_SUFFIX, THUMBNAIL_MIME = ".webp", "image/webp"


@functools.cache
def _environment() -> jinja2.Environment:
    """Made on first use: importing this module (training does, through the build's
    statistics) needs no template."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ava_core", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["bar_heights"] = bar_heights
    return environment


def write_page(file: IO[str], template: str, **context) -> None:
    """Renders `template` into an open text file piece by piece: a page of 10,000 photos is
    never one string in memory."""
    _environment().get_template(template).stream(**context).dump(file)


def thumbnail(pixels: np.ndarray | Image.Image) -> bytes:
    """A WebP of at most THUMBNAIL_SIDE pixels a side, of exactly these pixels (no colour
    or orientation change: they are already upright sRGB)."""
    image = pixels.copy() if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels, np.uint8))
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)  # antialiased; a third faster than Lanczos
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def data_uri(thumbnail_bytes: bytes) -> str:
    return f"data:{THUMBNAIL_MIME};base64," + base64.b64encode(thumbnail_bytes).decode("ascii")


def files_dir(page: str) -> str:
    """Where a page's thumbnails go: beside it, named as browsers name a saved page's files."""
    root, _ = os.path.splitext(page)
    return f"{root}_files"


def bar_heights(*distributions: Sequence[float] | None) -> list[list[int]]:
    """Each distribution's bars in percent of the tallest bar of them all, so that two
    histograms drawn side by side share one scale."""
    given = [np.asarray(d, np.float64) for d in distributions if d is not None]
    peak = max((float(d.max()) for d in given), default=0.0) or 1.0
    return [[round(100.0 * p / peak) for p in d] for d in given]

