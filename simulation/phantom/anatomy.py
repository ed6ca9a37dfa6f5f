"""The breast as layers of tissue, each with its own echogenicity and attenuation.

From the skin down a breast B-mode image crosses: the bright epidermis line and the dermis;
subcutaneous fat (dark lobules framed by the bright, curving Cooper's ligaments); the echogenic
fibroglandular zone with fat islands and dark ducts; a thin dark band of retromammary fat; the
bright pectoral fascia and the striated pectoralis muscle. This module draws those layers as two
maps on the image grid: backscatter amplitude in dB (what speckle is drawn from) and attenuation
in dB/cm/MHz (what shadows and enhancement come from). Layer boundaries undulate with smooth
random curves so no two breasts look alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Backscatter (amplitude, dB relative to fibroglandular tissue) and attenuation (dB/cm/MHz).
ECHO_DB = {
    "epidermis": 8.0,
    "dermis": -4.0,
    "fat": -20.0,
    "ligament": 0.0,
    "gland": 0.0,
    "duct": -24.0,
    "fascia": 0.0,
    "muscle": -19.0,
    "fibre": -8.0,
}
ATTENUATION = {"skin": 0.8, "fat": 0.48, "gland": 0.75, "muscle": 0.9}


@dataclass(frozen=True)
class Grid:
    """Pixel grid of the scan area: row depth and column lateral position in millimetres."""

    rows: int
    cols: int
    depth_mm: float
    width_mm: float

    @property
    def dz(self) -> float:
        return self.depth_mm / self.rows

    @property
    def dx(self) -> float:
        return self.width_mm / self.cols

    def z(self) -> np.ndarray:
        """Depth of each row centre (mm), shape [rows, 1]."""
        return ((np.arange(self.rows, dtype=np.float32) + 0.5) * self.dz)[:, None]

    def x(self) -> np.ndarray:
        """Lateral position of each column centre (mm, 0 at the middle), shape [1, cols]."""
        return ((np.arange(self.cols, dtype=np.float32) + 0.5) * self.dx - self.width_mm / 2)[
            None, :
        ]


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps plus the layer depths a lesion is placed between."""

    echo_db: np.ndarray  # [rows, cols] float32
    attenuation: np.ndarray  # [rows, cols] float32, dB/cm/MHz
    gland_top: np.ndarray  # [cols] mm
    gland_bottom: np.ndarray  # [cols] mm
    muscle_top: np.ndarray  # [cols] mm


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], corr_px: tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-variance random field with correlation lengths (rows, cols) in pixels.

    Drawn as white noise on a coarse lattice and cubic-upsampled: far cheaper than filtering a
    full-size field, and smooth enough for tissue texture.
    """
    rows, cols = shape
    cr = max(2, int(np.ceil(rows / max(corr_px[0], 1.0))) + 3)
    cc = max(2, int(np.ceil(cols / max(corr_px[1], 1.0))) + 3)
    coarse = rng.standard_normal((cr, cc)).astype(np.float32)
    field = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def smooth_curve(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """Unit-variance smooth random curve of length n with correlation `corr` samples."""
    return smooth_field(rng, (1, n), (1.0, corr))[0]


def _band(z: np.ndarray, top: np.ndarray, soft: float) -> np.ndarray:
    """Soft step from 0 (above `top`) to 1 (below), `soft` mm wide: tissue interfaces are not
    pixel-sharp."""
    return 0.5 + 0.5 * np.tanh((z - top) / (2 * soft))


def breast_anatomy(rng: np.random.Generator, grid: Grid) -> Anatomy:
    """Draw one breast's layers on `grid`."""
    H, W = grid.rows, grid.cols
    z, x = grid.z(), grid.x()
    mm_r, mm_c = 1.0 / grid.dz, 1.0 / grid.dx  # pixels per mm

    # Layer interfaces (mm), each an undulating curve across the image.
    skin = rng.uniform(1.4, 2.4) + 0.2 * smooth_curve(rng, W, 12 * mm_c)
    fat_th = rng.uniform(3.0, 11.0)
    gland_th = rng.uniform(6.0, 17.0)
    retro_th = rng.uniform(1.5, 4.0)
    tilt = rng.uniform(-0.12, 0.12) * x[0]
    gland_top = skin + fat_th + 1.8 * smooth_curve(rng, W, 10 * mm_c) + tilt
    # The pectoral fascia is smooth; the gland's deep border undulates above it.
    muscle_top = (
        skin.mean()
        + fat_th
        + gland_th
        + retro_th
        + 0.7 * tilt
        + 0.8 * smooth_curve(rng, W, 25 * mm_c)
    )
    gland_bottom = gland_top + gland_th + 2.0 * smooth_curve(rng, W, 9 * mm_c)
    gland_bottom = np.clip(gland_bottom, gland_top + 3.0, muscle_top - 1.0)

    # Fat: dark lobules whose borders (the zero set of a smooth field) are Cooper's ligaments.
    lob = smooth_field(rng, (H, W), (4.0 * mm_r, 9.0 * mm_c))
    ligament = np.exp(-((lob / 0.08) ** 2))
    fat = ECHO_DB["fat"] + 2.0 * smooth_field(rng, (H, W), (1.0 * mm_r, 1.5 * mm_c))
    fat = fat + ligament * (ECHO_DB["ligament"] - fat)

    # Fibroglandular zone: echogenic, heterogeneous, with fat islands and thin dark ducts that
    # run roughly parallel to the skin.
    tex = smooth_field(rng, (H, W), (0.8 * mm_r, 1.6 * mm_c))
    islands = smooth_field(rng, (H, W), (2.5 * mm_r, 4.0 * mm_c))
    gland = ECHO_DB["gland"] + 2.5 * tex
    island_w = np.clip((islands - rng.uniform(0.5, 1.3)) / 0.3, 0.0, 1.0)
    gland = gland + island_w * (fat - gland)
    duct_field = smooth_field(rng, (H, W), (1.5 * mm_r, 12.0 * mm_c))
    duct = np.exp(-((duct_field / 0.08) ** 2)) * (rng.uniform() < 0.7)
    gland = gland + duct * 0.8 * (ECHO_DB["duct"] - gland)

    # Pectoralis: dark muscle with bright oblique fibres under a bright fascia line.
    angle = np.deg2rad(rng.uniform(-12, 12))
    period = rng.uniform(1.5, 2.5)
    warp = 2.5 * smooth_field(rng, (H, W), (3 * mm_r, 10 * mm_c))
    stripes = np.cos(2 * np.pi * (z * np.cos(angle) + x * np.sin(angle)) / period + warp)
    fibre = np.clip((stripes - 0.75) / 0.25, 0, 1) * (
        smooth_field(rng, (H, W), (2 * mm_r, 4 * mm_c)) > -0.3
    )
    muscle = ECHO_DB["muscle"] + fibre * (ECHO_DB["fibre"] - ECHO_DB["muscle"])

    # Stack the layers from the skin down, with soft interfaces.
    in_dermis = _band(z, np.float32(0.5), 0.05)
    below_skin = _band(z, skin, 0.12)
    below_gland_top = _band(z, gland_top, 0.5)
    below_gland_bottom = _band(z, gland_bottom, 0.4)
    below_muscle = _band(z, muscle_top, 0.15)

    echo = np.full((H, W), ECHO_DB["epidermis"], np.float32)
    echo += in_dermis * (ECHO_DB["dermis"] - echo)
    echo += below_skin * (fat - echo)
    echo += below_gland_top * (gland - echo)
    echo += below_gland_bottom * (fat - echo)
    echo += below_muscle * (muscle - echo)
    fascia = np.exp(-(((z - muscle_top) / 0.22) ** 2))
    fascia *= np.clip(0.6 + 0.4 * smooth_curve(rng, W, 6 * mm_c), 0.1, 1.0)
    echo += fascia * (ECHO_DB["fascia"] - echo)

    gland_w = below_gland_top * (1 - below_gland_bottom)
    att = np.full((H, W), ATTENUATION["skin"], np.float32)
    att += below_skin * (ATTENUATION["fat"] - att)
    att += gland_w * (ATTENUATION["gland"] - ATTENUATION["fat"])
    att += below_muscle * (ATTENUATION["muscle"] - att)

    return Anatomy(
        echo.astype(np.float32),
        att.astype(np.float32),
        gland_top.astype(np.float32),
        gland_bottom.astype(np.float32),
        muscle_top.astype(np.float32),
    )
