"""Colours as a browser shows them: embedded ICC profiles converted to sRGB, Adobe CMYK JPEGs.

The references are computed here from the colour spaces' published primaries with numpy
(`icc_profiles.convert_to_srgb`), independently of LittleCMS, which the validator uses.
"""

import io

import numpy as np
import pytest
from PIL import Image

import icc_profiles
from ava_core import images

FULL = images.ImagePolicy(resize_to=None)
PATCH = 32
# Encoded colours that stay inside sRGB's gamut in every space tested, plus greys.
PATCHES = np.array(
    [[128, 128, 128], [200, 200, 200], [150, 110, 90], [90, 120, 100], [110, 100, 150], [170, 150, 110]], dtype=np.uint8
)


def _patch_image(colours: np.ndarray, mode: str = "RGB") -> Image.Image:
    strip = np.repeat(np.repeat(colours[None, :, :], PATCH, axis=0), PATCH, axis=1)
    return Image.fromarray(strip, mode)


def _patch_centres(jpeg: bytes, count: int) -> np.ndarray:
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)
    inner = slice(PATCH // 4, PATCH * 3 // 4)
    return np.array([pixels[inner, k * PATCH + PATCH // 4 : k * PATCH + PATCH * 3 // 4].mean(axis=(0, 1)) for k in range(count)])


@pytest.mark.parametrize("space", [icc_profiles.ADOBE_RGB, icc_profiles.DISPLAY_P3, icc_profiles.PROPHOTO], ids=lambda s: s.name)
@pytest.mark.parametrize("container", ["PNG", "JPEG"])
def test_embedded_profile_is_converted_to_srgb(space, container):
    expected = icc_profiles.convert_to_srgb(space, PATCHES)
    assert ((expected > 3) & (expected < 252)).all(), "a patch left sRGB's gamut: the test would measure clipping"
    options = {"quality": 98, "subsampling": 0} if container == "JPEG" else {}
    buffer = io.BytesIO()
    _patch_image(PATCHES).save(buffer, format=container, icc_profile=icc_profiles.icc_profile(space), **options)
    clean = images.reencode(buffer.getvalue(), FULL)
    assert clean.icc_converted and not clean.broken_icc
    # The reference starts from what the file holds: a JPEG's own coding error in a wide
    # space is amplified by any correct conversion.
    stored = _patch_centres(buffer.getvalue(), len(PATCHES))
    got = _patch_centres(clean.jpeg, len(PATCHES))
    reference = icc_profiles.convert_to_srgb(space, stored)
    assert np.abs(got - reference).max() < 2.5, (got.round(1), reference.round(1))
    # The test can tell: taking the values as sRGB would be off by more than that.
    assert np.abs(PATCHES - expected).max() > 8


def test_srgb_and_untagged_photos_keep_their_values():
    untagged = io.BytesIO()
    _patch_image(PATCHES).save(untagged, format="PNG")
    tagged = io.BytesIO()
    _patch_image(PATCHES).save(tagged, format="PNG", icc_profile=icc_profiles.icc_profile(
        icc_profiles.RgbSpace("sRGB-like gamma 2.2", icc_profiles.SRGB.primaries, icc_profiles.D65, 2.2)))
    for data in (untagged.getvalue(), tagged.getvalue()):
        got = _patch_centres(images.reencode(data, FULL).jpeg, len(PATCHES))
        assert np.abs(got - PATCHES).max() < 4


def test_a_broken_profile_keeps_the_image_as_srgb():
    buffer = io.BytesIO()
    _patch_image(PATCHES).save(buffer, format="PNG", icc_profile=b"not an ICC profile at all" * 8)
    clean = images.reencode(buffer.getvalue(), FULL)
    assert clean.broken_icc and not clean.icc_converted
    assert np.abs(_patch_centres(clean.jpeg, len(PATCHES)) - PATCHES).max() < 4


def test_adobe_cmyk_jpeg_shows_the_colours_a_browser_shows():
    """Pillow writes CMYK JPEGs as Photoshop does (Adobe APP14, inverted); browsers show (1-C)(1-K)."""
    cmyk = np.array([[255, 0, 0, 0], [0, 255, 255, 0], [0, 0, 0, 128], [64, 32, 0, 64], [0, 0, 0, 0]], dtype=np.uint8)
    buffer = io.BytesIO()
    _patch_image(cmyk, "CMYK").save(buffer, format="JPEG", quality=98)
    data = buffer.getvalue()
    assert b"Adobe" in data[:200]
    clean = images.reencode(data, FULL)
    c, m, y, k = (cmyk.astype(np.float64) / 255).T
    expected = 255 * np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], axis=1)
    got = _patch_centres(clean.jpeg, len(cmyk))
    assert np.abs(got - expected).max() < 4, (got.round(1), expected.round(1))
