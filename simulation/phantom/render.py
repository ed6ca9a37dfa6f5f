"""`render_case`: one simulated breast B-mode image with its lesion labels.

Tissue maps (anatomy) + lesions (lexicon morphology) -> speckle, PSF, envelope, attenuation and
TGC, log compression (bmode) -> the device's geometry and markers. Everything is drawn from one
numpy Generator, so a seed fixes the image bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from common.errors import DataError
from simulation.phantom.anatomy import Grid, breast_anatomy
from simulation.phantom.bmode import (
    beam_sigma_px,
    depth_gain,
    draw_markers,
    log_compress,
    scan_area,
    speckle_envelope,
)
from simulation.phantom.devices import DeviceProfile, get_device
from simulation.phantom.lesions import LesionSpec, draw_lesion, sample_lesion

PATHOLOGIES = ("normal", "benign", "malignant")


@dataclass(frozen=True)
class PhantomImage:
    """A rendered image and everything a hospital's label export would say about it.

    `mask` labels lesion k (1-based) with k; `boxes[k-1]` is its (x0, y0, x1, y1) box in pixels
    with x1, y1 exclusive. `region` is the scan area's (x0, y0, x1, y1) bounding box, inclusive,
    as DICOM's SequenceOfUltrasoundRegions states it. `birads` is 1 (negative) for normal images,
    otherwise the highest category among the lesions.
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: tuple[tuple[int, int, int, int], ...]
    birads: int
    pathology: str
    device: str
    lesions: tuple[LesionSpec, ...]
    region: tuple[int, int, int, int]
    spacing_mm: tuple[float, float]  # (row, column) pixel spacing
    envelope: np.ndarray | None = None

    def rgb(self) -> np.ndarray:
        """The image as the scanner's screen shows it: grey map with the device's tint."""
        tint = np.asarray(get_device(self.device).tint, np.float32)
        return np.clip(self.image[..., None].astype(np.float32) * tint, 0, 255).astype(np.uint8)


def _shrink(spec: LesionSpec, max_width_mm: float, lateral_frac: float) -> LesionSpec:
    """Cap a lesion's width, keeping its aspect ratio, and move it across the image."""
    scale = min(1.0, max_width_mm / spec.width_mm)
    return replace(
        spec,
        width_mm=spec.width_mm * scale,
        height_mm=spec.height_mm * scale,
        lateral_frac=lateral_frac,
    )


def sample_lesions(rng: np.random.Generator, pathology: str) -> tuple[LesionSpec, ...]:
    """The lesions of one patient: none, one, or (for some benign cases) two cysts."""
    if pathology not in PATHOLOGIES:
        raise DataError(f"pathology must be one of {PATHOLOGIES}, got {pathology!r}")
    if pathology == "normal":
        return ()
    first = sample_lesion(rng, pathology)
    if first.kind == "cyst" and rng.uniform() < 0.25:
        second = sample_lesion(rng, pathology)
        while second.kind != "cyst":
            second = sample_lesion(rng, pathology)
        # Two small cysts on opposite sides of the image, so they never overlap.
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        first = _shrink(first, 10.0, lateral_frac=-0.45 * side)
        second = _shrink(second, 7.0, lateral_frac=0.5 * side)
        return first, second
    return (first,)


def _as_shape(size: int | tuple[int, int] | None, device: DeviceProfile) -> tuple[int, int]:
    if size is None:
        return device.native_size
    rows, cols = (size, size) if isinstance(size, (int, np.integer)) else size
    if rows < 32 or cols < 32:
        raise DataError(f"phantom image size must be at least 32x32, got {rows}x{cols}")
    return int(rows), int(cols)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a binary mask, x1/y1 exclusive."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise DataError("phantom: a lesion ended up outside the scan area")
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def render_case(
    rng_or_seed: np.random.Generator | int,
    pathology: str,
    device: str = "device-a",
    size: int | tuple[int, int] | None = None,
    lesions: tuple[LesionSpec, ...] | None = None,
    keep_envelope: bool = False,
) -> PhantomImage:
    """Render one image of `pathology` as `device` shows it.

    `size` is an int (square), (rows, cols), or None for the device's native scan-area size; the
    field of view in millimetres is the device's either way. Pass `lesions` (see `sample_lesions`
    and `lesions.view_of`) to show the same patient's lesion in several images.
    """
    rng = (
        rng_or_seed
        if isinstance(rng_or_seed, np.random.Generator)
        else np.random.default_rng(rng_or_seed)
    )
    dev = get_device(device)
    rows, cols = _as_shape(size, dev)
    grid = Grid(rows, cols, dev.depth_mm, dev.width_mm)
    if lesions is None:
        lesions = sample_lesions(rng, pathology)
    elif pathology == "normal" and lesions:
        raise DataError("a normal case cannot have lesions")

    anatomy = breast_anatomy(rng, grid)
    echo, att = anatomy.echo_db.copy(), anatomy.attenuation.copy()
    mask = np.zeros((rows, cols), np.uint8)
    usable_width = dev.width_mm * dev.top_width_frac * 0.95
    for k, spec in enumerate(lesions):
        draw_lesion(rng, spec, grid, anatomy, echo, att, k + 1, mask, usable_width)

    amplitude = np.power(10.0, echo / 20.0).astype(np.float32)
    axial, lateral = beam_sigma_px(dev, grid)
    env = speckle_envelope(rng, amplitude, axial, lateral) * depth_gain(rng, att, grid, dev)
    shown = log_compress(env, dev, gain_db=float(rng.uniform(-3.0, 3.0)))
    if dev.smoothing_px > 0:
        shown = cv2.GaussianBlur(shown, (0, 0), dev.smoothing_px)
    area = scan_area(dev, rows, cols)
    image = np.where(area, np.round(shown * 255.0), 0).astype(np.uint8)
    draw_markers(image, dev, grid)
    mask[~area] = 0
    boxes = tuple(_box(mask == k + 1) for k in range(len(lesions)))

    region_cols = np.nonzero(area.any(axis=0))[0]
    return PhantomImage(
        image=image,
        mask=mask,
        boxes=boxes,
        birads=max((s.birads for s in lesions), default=1),
        pathology=pathology,
        device=device,
        lesions=tuple(lesions),
        region=(int(region_cols[0]), 0, int(region_cols[-1]), rows - 1),
        spacing_mm=(grid.dz, grid.dx),
        envelope=env if keep_envelope else None,
    )
