"""The validator over every format and mode Pillow writes, and thousands of seeded broken files.

Whatever the bytes, `images.reencode` ends in a clean upright RGB JPEG or a
`RejectedInput`: never another exception (one input must never fail a build), and never
more memory than its pixel limit allows.
"""

import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import image_zoo
from ava_core import images
from ava_core.rejections import RejectedInput

FULL = images.ImagePolicy(resize_to=None)
ZOO = image_zoo.zoo()
# Formats that keep the RGB pixels exactly (or near: lossless WebP, JPEG-coded TIFF excluded).
LOSSLESS_RGB = {"png-rgba", "tiff-raw", "tiff-lzw", "tiff-deflate", "tiff-packbits", "bmp", "webp-lossless-rgba", "ppm", "tga", "pcx"}
FUZZ_MUTATIONS_PER_FILE = 80
FUZZ_MAX_PIXELS = 1_000_000
FUZZ_MEMORY_BUDGET_BYTES = 200 << 20  # a decoded 1-megapixel image with its copies is ~20 MB


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_format_of_the_zoo_becomes_an_rgb_jpeg_of_the_picture(name):
    clean = images.reencode(ZOO[name], FULL)
    decoded = Image.open(io.BytesIO(clean.jpeg))
    assert (decoded.format, decoded.mode) == ("JPEG", "RGB")
    expected_size = (64, 43) if name == "ico" else (96, 64)  # ICO fits the picture into 64x64
    assert decoded.size == expected_size
    assert np.asarray(decoded, dtype=np.float64).std() > 20, "the picture did not survive"
    if name in LOSSLESS_RGB:  # the same pixels in, so the same JPEG out as from a plain PNG
        assert clean.jpeg == images.reencode(image_zoo.encode(image_zoo.photo(), "PNG"), FULL).jpeg


@pytest.mark.parametrize("mode", sorted(image_zoo.modes_in_memory()))
def test_every_mode_pillow_stores_in_tiff_converts(mode):
    image = image_zoo.modes_in_memory()[mode]
    try:
        data = image_zoo.encode(image, "TIFF")
    except (OSError, KeyError, ValueError):
        pytest.skip(f"Pillow cannot write mode {mode} to TIFF, so no file holds it")
    try:
        Image.open(io.BytesIO(data)).load()
    except OSError as error:  # then the validator's rejection is the right answer, tested below
        pytest.skip(f"Pillow cannot read back its own {mode} TIFF: {error}")
    clean = images.reencode(data, FULL)
    assert clean.source_mode == Image.open(io.BytesIO(data)).mode
    decoded = np.asarray(Image.open(io.BytesIO(clean.jpeg)), dtype=np.float64)
    assert decoded.shape == (64, 96, 3) and decoded.std() > 20


def test_first_frame_of_animations_and_multipage_files():
    for name in ("gif-animated", "tiff-multipage", "mpo"):
        decoded = np.asarray(Image.open(io.BytesIO(images.reencode(ZOO[name], FULL).jpeg)), dtype=np.float64)
        # The first frame is the colour photo; the second, grey: channels differ only in the first.
        assert np.abs(decoded[..., 0] - decoded[..., 2]).mean() > 20, name


def test_a_forged_huge_size_is_rejected_from_the_header():
    for name in ("png-rgba", "jpeg-rgb", "gif-transparent", "bmp"):
        forged = image_zoo.forge_size(ZOO[name], 60_000, 60_000)
        with pytest.raises(RejectedInput) as error:
            images.reencode(forged, FULL)
        assert error.value.reason.value == "too_many_pixels", (name, error.value.detail)


_FUZZ_SCRIPT = """
import collections, json, resource, sys
sys.path.insert(0, {tests_dir!r})
import image_zoo
from ava_core import images
from ava_core.rejections import RejectedInput

policy = images.ImagePolicy(resize_to=(64, 64), max_pixels={max_pixels})
zoo = image_zoo.zoo()
images.reencode(zoo["jpeg-rgb"], policy)  # warm up the decoders before the baseline
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
outcomes, other = collections.Counter(), []
for seed, (name, data) in enumerate(sorted(zoo.items())):
    for kind, mutated in image_zoo.mutations(data, {count}, seed):
        try:
            images.reencode(mutated, policy)
            outcomes["clean"] += 1
        except RejectedInput as error:
            outcomes[error.reason.value] += 1
        except BaseException as error:
            other.append(f"{{name}}/{{kind}}: {{type(error).__name__}}: {{error}}")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"outcomes": outcomes, "other": other[:20], "growth": peak - baseline}}))
"""


def test_fuzzed_files_end_as_an_image_or_a_rejection_within_the_memory_budget():
    tests_dir = str(pathlib.Path(__file__).parent)
    script = _FUZZ_SCRIPT.format(tests_dir=tests_dir, max_pixels=FUZZ_MAX_PIXELS, count=FUZZ_MUTATIONS_PER_FILE)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=pathlib.Path(tests_dir).parent, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["other"] == [], report["other"]
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == FUZZ_MUTATIONS_PER_FILE * len(ZOO) >= 2000
    assert outcomes["clean"] > 0 and outcomes["too_many_pixels"] > 0 and outcomes["undecodable"] > 0
    assert report["growth"] < FUZZ_MEMORY_BUDGET_BYTES, f"grew {report['growth'] / 2**20:.0f} MiB"
