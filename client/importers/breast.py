"""BrEaST / Breast-Lesions-USG (Pawlowska 2024): images, masks and a clinical spreadsheet.

`BrEaST-Lesions_USG-images_and_masks/caseNNN.png` with `caseNNN_tumor.png` masks (several joined
by '&' in Mask_tumor_filename); the .xlsx sheet gives CaseID, Image_filename, BIRADS and
Classification. One image per patient (CaseID).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from client.importers.common import Item, Skip, birads_number, mask_boxes, read_gray
from common.errors import DataError

IMAGE_DIR = "BrEaST-Lesions_USG-images_and_masks"


def _rows(dataset_dir: Path) -> list[dict]:
    from openpyxl import load_workbook

    sheets = sorted(dataset_dir.rglob("*.xlsx"))
    if not sheets:
        raise DataError(f"{dataset_dir}: not a BrEaST folder (no clinical .xlsx spreadsheet)")
    wb = load_workbook(sheets[0], read_only=True, data_only=True)
    ws = next((wb[n] for n in wb.sheetnames if n.startswith("BrEaST")), wb.worksheets[0])
    it = ws.iter_rows(values_only=True)
    header = [str(h or "").strip() for h in next(it)]
    if "Image_filename" not in header:
        raise DataError(f"{sheets[0]}: no Image_filename column")
    return [dict(zip(header, row)) for row in it if any(v is not None for v in row)]


def read(dataset_dir: Path) -> Iterator[Item | Skip]:
    dataset_dir = Path(dataset_dir)
    images = next(
        (
            p
            for p in [dataset_dir / IMAGE_DIR, dataset_dir]
            if p.is_dir() and any(p.glob("case*.png"))
        ),
        None,
    )
    if images is None:
        raise DataError(f"{dataset_dir}: no {IMAGE_DIR}/ with case*.png images")
    for row in _rows(dataset_dir):
        name = str(row.get("Image_filename") or "").strip()
        pathology = str(row.get("Classification") or "").strip().lower()
        if pathology not in ("normal", "benign", "malignant"):
            yield Skip(name, f"classification {pathology!r} is not normal, benign or malignant")
            continue
        image = read_gray(images / name)
        if image is None:
            yield Skip(name, "image file missing or unreadable")
            continue
        mask_names = [
            m.strip() for m in str(row.get("Mask_tumor_filename") or "").split("&") if m.strip()
        ]
        masks = [read_gray(images / m) for m in mask_names]
        masks = [m for m in masks if m is not None and m.shape == image.shape]
        if pathology != "normal" and not masks:
            yield Skip(name, "tumour mask missing or of another size")
            continue
        boxes = mask_boxes(np.maximum.reduce(masks)) if masks else ()
        case = str(row.get("CaseID") or name)
        yield Item(
            name, case, pathology, image, boxes, birads_number(row.get("BIRADS")), "BrEaST (mixed)"
        )
