"""BUS-UCLM (Vallez 2025, Siemens ACUSON S2000): `images/`, `masks/`, `INFO.csv` (';').

INFO.csv columns are read by name (Image, Label). Masks are RGB: green = benign, red = malignant.
File names start with a patient code (`ALWI_000.png`), which groups a patient's images.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import cv2

from client.importers.common import Item, Skip, mask_boxes, read_gray
from common.errors import DataError

DEVICE = "Siemens ACUSON S2000"


def _root(dataset_dir: Path) -> Path:
    for cand in (dataset_dir, dataset_dir / "BUS-UCLM"):
        if (cand / "INFO.csv").is_file() and (cand / "images").is_dir():
            return cand
    raise DataError(f"{dataset_dir}: not a BUS-UCLM folder (expected INFO.csv and images/)")


def read(dataset_dir: Path) -> Iterator[Item | Skip]:
    root = _root(Path(dataset_dir))
    with open(root / "INFO.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    for row in rows:
        name = (row.get("Image") or "").strip()
        if not name:
            continue
        pathology = (row.get("Label") or "").strip().lower()
        image = read_gray(root / "images" / name)
        if image is None:
            yield Skip(name, "image file missing or unreadable")
            continue
        mask = cv2.imread(str(root / "masks" / name), cv2.IMREAD_COLOR)
        if mask is not None and mask.shape[:2] != image.shape:
            mask = None
        if pathology not in ("normal", "benign", "malignant"):
            if mask is None:
                yield Skip(name, f"label {pathology!r} unknown and no mask")
                continue
            green, red = int((mask[..., 1] > 127).sum()), int((mask[..., 2] > 127).sum())
            pathology = "normal" if green + red == 0 else ("malignant" if red > green else "benign")
        boxes = ()
        if pathology != "normal":
            if mask is None:
                yield Skip(name, "lesion image without a readable mask")
                continue
            boxes = mask_boxes(mask.max(axis=2))
        patient = name.rsplit("_", 1)[0] if "_" in name else name
        yield Item(name, patient, pathology, image, boxes, None, DEVICE)
