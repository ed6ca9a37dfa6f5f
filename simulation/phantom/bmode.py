"""From tissue maps to a displayed B-mode image, the way a scanner forms one.

1. Scatterers: every pixel holds a circular complex Gaussian scatterer whose standard deviation
   is the tissue's backscatter amplitude. Its random phase stands for the scatterer's
   sub-wavelength depth, so the RF carrier drops out of the envelope and only the pulse-echo
   point spread function's envelope matters.
2. PSF: a Gaussian pulse along depth and a Gaussian beam across it, narrowest at the transmit
   focus and widening above and below it (a focused beam's waist). Convolution is separable and
   done with OpenCV's separable filter (far faster than a 2-D FFT at these sizes).
3. Envelope detection: the magnitude of the complex field. Where many scatterers share a
   resolution cell this is Rayleigh distributed, SNR = mean/std = 1.91 (fully developed speckle).
4. Depth: the round-trip loss accumulates the attenuation of every tissue above a pixel (this is
   where shadows and enhancement come from); time-gain compensation undoes the loss of average
   tissue, imperfectly, with a slight per-image slider curve.
5. Display: log compression into the device's dynamic range, gain and grey-map gamma.
"""

from __future__ import annotations

import cv2
import numpy as np

from simulation.phantom.anatomy import Grid, smooth_curve
from simulation.phantom.devices import DeviceProfile

FWHM_TO_SIGMA = 1.0 / 2.3548
MIN_SIGMA_PX = 0.5  # below this a Gaussian kernel is a delta on the pixel grid


def psf_kernel(sigma_px: float) -> np.ndarray:
    """1-D Gaussian with unit energy, so speckle brightness does not depend on the PSF size."""
    sigma_px = max(sigma_px, MIN_SIGMA_PX)
    half = max(1, int(np.ceil(3 * sigma_px)))
    t = np.arange(-half, half + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma_px) ** 2)
    return (k / np.sqrt((k**2).sum())).astype(np.float32)


def beam_sigma_px(device: DeviceProfile, grid: Grid) -> tuple[float, np.ndarray]:
    """(axial sigma, lateral sigma per row) in pixels for this device on this grid."""
    axial = device.axial_res_mm * FWHM_TO_SIGMA / grid.dz
    focus = 0.45 * grid.depth_mm
    rayleigh = 0.35 * grid.depth_mm
    z = grid.z()[:, 0]
    lateral_mm = device.lateral_res_mm * FWHM_TO_SIGMA * np.sqrt(1 + ((z - focus) / rayleigh) ** 2)
    return float(axial), (lateral_mm / grid.dx).astype(np.float32)


def speckle_envelope(
    rng: np.random.Generator,
    amplitude: np.ndarray,
    axial_sigma_px: float,
    lateral_sigma_px: np.ndarray | float,
) -> np.ndarray:
    """Envelope of scatterers (std `amplitude` per pixel) convolved with the PSF.

    `lateral_sigma_px` may vary per row (the beam widens away from the focus): the field is
    filtered at three beam widths and blended row by row.
    """
    rows, cols = amplitude.shape
    lat = np.broadcast_to(np.asarray(lateral_sigma_px, np.float32), (rows,))
    levels = np.unique(np.round(np.linspace(lat.min(), lat.max(), 3), 3))
    ax = psf_kernel(axial_sigma_px)
    kernels = [psf_kernel(float(s)) for s in levels]
    # Scatterers extend past the image edge (as tissue does), so the edge rows and columns get
    # the same speckle statistics as the middle; the margin is cropped after filtering.
    pr, pc = len(ax) // 2, max(len(k) for k in kernels) // 2
    scale = cv2.copyMakeBorder(amplitude.astype(np.float32), pr, pr, pc, pc, cv2.BORDER_REPLICATE)
    scale *= np.float32(np.sqrt(0.5))
    re = rng.standard_normal(scale.shape, dtype=np.float32) * scale
    im = rng.standard_normal(scale.shape, dtype=np.float32) * scale
    one = np.ones(1, np.float32)
    re = cv2.sepFilter2D(re, -1, one, ax)[pr : pr + rows]
    im = cv2.sepFilter2D(im, -1, one, ax)[pr : pr + rows]
    if len(levels) == 1:
        re = cv2.sepFilter2D(re, -1, kernels[0], one)[:, pc : pc + cols]
        im = cv2.sepFilter2D(im, -1, kernels[0], one)[:, pc : pc + cols]
        return np.sqrt(re * re + im * im)
    pos = np.interp(lat, levels, np.arange(len(levels)))
    weights = np.stack([np.clip(1 - np.abs(pos - i), 0, 1) for i in range(len(levels))], 1)
    # Blending correlated fields lowers their power; rescale each row back to unit power so
    # the envelope stays one Rayleigh distribution (not a mixture) at every depth.
    half = max(len(k) for k in kernels) // 2
    padded = np.stack([np.pad(k, half - len(k) // 2) for k in kernels])
    power = np.einsum("ri,ij,rj->r", weights, padded @ padded.T, weights)
    weights = (weights / np.sqrt(power)[:, None]).astype(np.float32)
    out_re = np.zeros((rows, cols), np.float32)
    out_im = np.zeros((rows, cols), np.float32)
    for i, k in enumerate(kernels):
        w = weights[:, i : i + 1]
        if not w.any():
            continue
        out_re += w * cv2.sepFilter2D(re, -1, k, one)[:, pc : pc + cols]
        out_im += w * cv2.sepFilter2D(im, -1, k, one)[:, pc : pc + cols]
    return np.sqrt(out_re * out_re + out_im * out_im)


def depth_gain(
    rng: np.random.Generator, attenuation: np.ndarray, grid: Grid, device: DeviceProfile
) -> np.ndarray:
    """Amplitude factor: round-trip attenuation above each pixel, then TGC."""
    dz_cm = grid.dz / 10.0
    path = np.cumsum(attenuation, axis=0) - 0.5 * attenuation  # dB/MHz*cm-ish, to pixel centre
    loss_db = 2.0 * device.centre_mhz * path * dz_cm
    z_cm = grid.z() / 10.0
    tgc_slope = rng.uniform(0.56, 0.70)  # the TGC assumes average tissue, never exactly right
    tgc_db = 2.0 * device.centre_mhz * tgc_slope * z_cm
    tgc_db = tgc_db + 1.5 * smooth_curve(rng, grid.rows, grid.rows / 5)[:, None]
    return np.power(10.0, (tgc_db - loss_db) / 20.0).astype(np.float32)


def log_compress(envelope: np.ndarray, device: DeviceProfile, gain_db: float) -> np.ndarray:
    """Envelope -> display value in [0, 1]: log, gain, dynamic-range window, grey-map gamma."""
    top_db = 20.0  # envelope level (dB) shown as white at zero gain
    db = 20.0 * np.log10(envelope + 1e-6) + device.gain_db + gain_db
    v = np.clip((db - top_db + device.dynamic_range_db) / device.dynamic_range_db, 0.0, 1.0)
    return v**device.gamma if device.gamma != 1.0 else v


def scan_area(device: DeviceProfile, rows: int, cols: int) -> np.ndarray:
    """Boolean mask of where the beam reaches: the whole rectangle, or a trapezoid."""
    if device.top_width_frac >= 1.0:
        return np.ones((rows, cols), bool)
    r = (np.arange(rows) + 0.5)[:, None] / rows
    half = 0.5 * (device.top_width_frac + (1 - device.top_width_frac) * r)
    x = (np.arange(cols) + 0.5)[None, :] / cols - 0.5
    return np.abs(x) <= half


def draw_markers(img: np.ndarray, device: DeviceProfile, grid: Grid) -> None:
    """Depth ruler, focus marker and probe-orientation mark, in the device's layout (in place)."""
    rows, cols = img.shape
    area = scan_area(device, rows, cols)
    level = 215
    # Depth ruler: a tick every 5 mm, longer every 10 mm, at the edge of the scan area.
    for depth in np.arange(5.0, grid.depth_mm, 5.0):
        r = int(depth / grid.dz)
        inside = np.nonzero(area[r])[0]
        length = 3 if int(round(depth)) % 10 == 0 else 1
        if device.marker_side == "right":
            c1 = inside[-1] + 1
            img[r, c1 - length : c1] = level
        else:
            c0 = inside[0]
            img[r, c0 : c0 + length] = level
    # Focus marker: a small triangle beside the ruler at the focal depth.
    r = int(0.45 * grid.depth_mm / grid.dz)
    inside = np.nonzero(area[r])[0]
    for i in range(3):
        rr = slice(max(0, r - 2 + i), r + 3 - i)
        c = inside[-1] - 4 - i if device.marker_side == "right" else inside[0] + 4 + i
        img[rr, c] = level
    # Orientation mark near the top-left corner; its shape is part of the vendor's style.
    inside = np.nonzero(area[3])[0]
    c = inside[0] + 3
    if device.orientation_mark == "square":
        img[2:5, c : c + 3] = 230
    elif device.orientation_mark == "ring":
        img[2:6, c : c + 4] = 230
        img[3:5, c + 1 : c + 3] = 40
    else:
        img[2:4, c : c + 2] = 230
