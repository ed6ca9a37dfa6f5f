"""BUS-BRA (Gomez-Flores 2024; four scanners): `Images/`, `Masks/`, `bus_data.csv`.

`bus_data.csv` has ID (bus_0001-l), Case (the patient), Pathology, BIRADS and Device; the image
is `Images/<ID>.png` and its mask `Masks/mask_<ID without 'bus_'>.png`. Patients are grouped by
Case, as the dataset's own cross-validation folds are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from client.importers.common import Item, Skip, birads_number, mask_boxes, read_gray
from common.errors import DataError


def _root(dataset_dir: Path) -> Path:
    for cand in [dataset_dir, *sorted(p for p in dataset_dir.iterdir() if p.is_dir())]:
        if (cand / "bus_data.csv").is_file():
            return cand
    raise DataError(f"{dataset_dir}: not a BUS-BRA folder (no bus_data.csv)")


def read(dataset_dir: Path) -> Iterator[Item | Skip]:
    root = _root(Path(dataset_dir))
    with open(root / "bus_data.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        ident = (row.get("ID") or "").strip()
        if not ident:
            continue
        pathology = (row.get("Pathology") or "").strip().lower()
        if pathology not in ("benign", "malignant"):
            yield Skip(ident, f"pathology {pathology!r} is not benign or malignant")
            continue
        image = read_gray(root / "Images" / f"{ident}.png")
        if image is None:
            yield Skip(ident, "image file missing or unreadable")
            continue
        mask = read_gray(root / "Masks" / f"mask_{ident.removeprefix('bus_')}.png")
        if mask is None or mask.shape != image.shape:
            yield Skip(ident, "mask missing or of another size")
            continue
        case = (row.get("Case") or ident).strip()
        yield Item(
            ident,
            case,
            pathology,
            image,
            mask_boxes(mask),
            birads_number(row.get("BIRADS")),
            (row.get("Device") or "unknown").strip(),
        )
