"""Importers for public breast-ultrasound datasets in their published folder layouts.

Each format module exposes `read(dataset_dir) -> Iterator[Item | Skip]`; `import_dataset` turns
items into store records: grey image, boxes from the masks, pathology, BI-RADS, device and a
patient id (the dataset's own patient/case grouping where it has one, otherwise one image per
patient). Image ids are keyed on format and file name, so re-importing adds nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from client.importers import breast, bus_bra, bus_uclm, busi
from client.importers.common import Item, Skip
from client.workdir import SiteDir
from common.chainlog import ChainLog
from common.errors import DataError
from common.store import ImageRecord, Store

FORMATS: dict[str, Callable] = {
    "busi": busi.read,
    "bus-bra": bus_bra.read,
    "breast": breast.read,
    "bus-uclm": bus_uclm.read,
}


def import_dataset(fmt: str, dataset_dir: Path, site: SiteDir) -> dict:
    """Import one public dataset into the site's store; returns counts and skipped items."""
    if fmt not in FORMATS:
        raise DataError(f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)}")
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DataError(f"{dataset_dir}: dataset folder not found")
    store = Store.create(site.store)
    imported, already, skipped = Counter(), 0, []
    for entry in FORMATS[fmt](dataset_dir):
        if isinstance(entry, Skip):
            skipped.append({"item": entry.name, "reason": entry.reason})
            continue
        image_id = f"{fmt}-" + hashlib.sha256(f"{fmt}:{entry.name}".encode()).hexdigest()[:16]
        if image_id in store:
            already += 1
            continue
        height, width = entry.image.shape
        store.add(
            ImageRecord(
                image_id=image_id,
                patient=f"{fmt}:{entry.patient}",
                pathology=entry.pathology,
                device=entry.device,
                width=width,
                height=height,
                boxes=entry.boxes,
                birads=entry.birads,
                source=fmt,
                extra={"file": entry.name},
            ),
            entry.image,
        )
        imported[entry.pathology] += 1
    summary = {
        "format": fmt,
        "imported": dict(imported),
        "already_in_store": already,
        "skipped": skipped,
        "store_total": len(store),
    }
    ChainLog(site.log).append(
        "import", format=fmt, imported=dict(imported), skipped=len(skipped), store_total=len(store)
    )
    return summary


__all__ = ["FORMATS", "Item", "Skip", "import_dataset"]
