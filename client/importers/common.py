"""What importers share: the item they yield, image/mask reading and masks -> boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Mask blobs smaller than this share of the image are annotation specks, not lesions.
MIN_BLOB_FRACTION = 0.0005


@dataclass
class Item:
    name: str  # the file name inside the dataset (stable, used for the image id)
    patient: str
    pathology: str  # normal, benign, malignant
    image: np.ndarray  # 2-D uint8
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    birads: int | None = None
    device: str = "unknown"


@dataclass
class Skip:
    name: str
    reason: str


def read_gray(path: Path) -> np.ndarray | None:
    """An image file as 2-D uint8 (colour converted to grey); None if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(img)


def mask_boxes(mask: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """One (x0, y0, x1, y1) box, x1/y1 exclusive, per connected lesion blob in a binary mask."""
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    min_area = MIN_BLOB_FRACTION * mask.size
    boxes = [
        (int(x), int(y), int(x + w), int(y + h))
        for x, y, w, h, area in stats[1:]
        if area >= min_area
    ]
    return tuple(sorted(boxes))


def birads_number(value) -> int | None:
    """'4a', '4', 4.0 -> 4; anything else -> None."""
    text = str(value or "").strip()
    return int(text[0]) if text[:1].isdigit() else None
