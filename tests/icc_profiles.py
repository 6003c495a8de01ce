"""RGB working-space ICC profiles (v2 matrix/TRC) written from their published primaries.

Cameras and editors embed Adobe RGB (1998), Display P3 or ProPhoto profiles; none ships
with Pillow, and the tests must not download one, so they are built here from the
standards' numbers: a white point, three primaries and a transfer curve. `linear_to_srgb`
and `decode` give the independent reference the tests compare LittleCMS's result with.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

D65 = (0.3127, 0.3290)
D50 = (0.3457, 0.3585)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


@dataclasses.dataclass(frozen=True)
class RgbSpace:
    name: str
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # xy of R, G, B
    white: tuple[float, float]
    gamma: float | None  # a pure power curve; None for sRGB's piecewise curve

    def to_xyz(self) -> np.ndarray:
        """The 3x3 matrix from linear RGB to XYZ under the space's own white."""
        xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in self.primaries]).T
        scale = np.linalg.solve(xyz, _xyz(self.white))
        return xyz * scale

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Encoded values in [0, 1] to linear light."""
        if self.gamma is not None:
            return values**self.gamma
        return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


ADOBE_RGB = RgbSpace("Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65, 563 / 256)
DISPLAY_P3 = RgbSpace("Display P3 (gamma 2.2 approximation)", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), D65, 2.2)
PROPHOTO = RgbSpace("ProPhoto RGB", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), D50, 1.8)
SRGB = RgbSpace("sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), D65, None)


def convert_to_srgb(space: RgbSpace, encoded: np.ndarray) -> np.ndarray:
    """Encoded values (0..255) of `space` to sRGB (0..255), as a colour-managed viewer shows them.

    Linear light, to XYZ, adapted from the space's white to D65 (Bradford, as ICC
    relative colorimetric does), to linear sRGB, sRGB's curve, clipped.
    """
    linear = space.decode(np.asarray(encoded, dtype=np.float64) / 255)
    xyz = linear @ space.to_xyz().T
    xyz = xyz @ _adaptation(space.white, D65).T
    srgb_linear = np.clip(xyz @ np.linalg.inv(SRGB.to_xyz()).T, 0, 1)
    encoded_srgb = np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055)
    return encoded_srgb * 255


def icc_profile(space: RgbSpace) -> bytes:
    """A v2 display-class RGB profile: desc, cprt, wtpt (D50), D50-adapted colorants, gamma TRCs."""
    colorants = _adaptation(space.white, D50) @ space.to_xyz()
    tags = [
        (b"desc", _desc(space.name)),
        (b"cprt", b"text" + bytes(4) + b"No copyright, generated for tests\x00"),
        (b"wtpt", _xyz_type(_xyz(D50))),
        (b"rXYZ", _xyz_type(colorants[:, 0])),
        (b"gXYZ", _xyz_type(colorants[:, 1])),
        (b"bXYZ", _xyz_type(colorants[:, 2])),
    ]
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(space.gamma * 256)) + bytes(2)
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table_size = 4 + 12 * len(tags)
    offset, table, data = 128 + table_size, b"", b""
    for signature, payload in tags:
        padded = payload + bytes(-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(payload))
        data += padded
    body = struct.pack(">I", len(tags)) + table + data
    size = 128 + len(body)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
        + bytes(12) + b"acsp" + b"APPL" + bytes(4) + bytes(4) + bytes(4) + bytes(8) + struct.pack(">I", 0)
        + _s15(_xyz(D50)) + b"lcms" + bytes(44)
    )
    assert len(header) == 128
    return header + body


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _adaptation(source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    cone_source, cone_target = _BRADFORD @ _xyz(source), _BRADFORD @ _xyz(target)
    return np.linalg.inv(_BRADFORD) @ np.diag(cone_target / cone_source) @ _BRADFORD


def _s15(values) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz_type(values) -> bytes:
    return b"XYZ " + bytes(4) + _s15(values)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)
