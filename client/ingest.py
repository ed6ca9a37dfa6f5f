"""`busgen-site ingest`: a PACS export + labels.csv -> de-identified training store.

Labels are joined to images by accession number (and SOP Instance UID when the labels name one)
*while the de-identifier still holds the original identifiers in memory*; what reaches the store
is the cleaned, grey, cropped image region, the lesion boxes mapped into that crop, pathology,
BI-RADS, device and the keyed patient pseudonym. Image ids are keyed on the new SOP Instance UID,
so re-running on the same export adds nothing and a new export adds only its new images.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from client import site_log
from client.deid import DeidResult, Pseudonymizer, deidentify_tree, load_secret, write_private_log
from client.deid.report import build_report, write_report
from client.workdir import SiteDir
from common.errors import DataError
from common.store import PATHOLOGIES, ImageRecord, Store

BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


@dataclass
class LabelRow:
    pathology: str
    birads: int | None
    frame: int
    box: tuple[int, int, int, int] | None
    device: str = ""


@dataclass
class Labels:
    """labels.csv indexed for the join: by SOP Instance UID, else by accession number."""

    by_sop: dict[str, list[LabelRow]] = field(default_factory=lambda: defaultdict(list))
    by_accession: dict[str, list[LabelRow]] = field(default_factory=lambda: defaultdict(list))

    def lookup(self, accession: str, sop_uid: str) -> list[LabelRow]:
        return self.by_sop.get(sop_uid) or self.by_accession.get(accession) or []


def _int(value: str | None, where: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        raise DataError(f"{where}: {value!r} is not a number") from None


def read_labels(path: Path) -> Labels:
    """Read labels.csv: accession_number and pathology required; sop_instance_uid, frame,
    birads, device and box_x0..box_y1 (x1/y1 exclusive, pixels of the exported frame) optional.
    One row per lesion; rows without a box label the image's pathology only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    labels = Labels()
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"accession_number", "pathology"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(
                f"{path}: missing columns {sorted(missing)} "
                "(labels are joined to images by accession_number)"
            )
        for n, row in enumerate(reader, 2):
            where = f"{path}: line {n}"
            pathology = (row.get("pathology") or "").strip().lower()
            if pathology not in PATHOLOGIES:
                raise DataError(
                    f"{where}: pathology must be one of {PATHOLOGIES}, got {pathology!r}"
                )
            coords = [_int(row.get(c), where) for c in BOX_COLUMNS]
            box = tuple(coords) if all(c is not None for c in coords) else None
            label = LabelRow(
                pathology,
                _int(row.get("birads"), where),
                _int(row.get("frame"), where) or 0,
                box,
                (row.get("device") or "").strip(),
            )
            sop = (row.get("sop_instance_uid") or "").strip()
            if sop:
                labels.by_sop[sop].append(label)
            labels.by_accession[(row.get("accession_number") or "").strip()].append(label)
    return labels


def device_name(result: DeidResult, rows: list[LabelRow]) -> str:
    """The labels' device if given (what the model is conditioned on), else vendor + model."""
    if rows and rows[0].device:
        return rows[0].device
    ds = result.dataset
    vendor, model = str(ds.get("Manufacturer", "")), str(ds.get("ManufacturerModelName", ""))
    return f"{vendor} {model}".strip() or "unknown"


def store_image(result: DeidResult, frame: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The cleaned image region of one frame as 8-bit grey, and the crop's (x0, y0) origin."""
    px = result.pixels
    frames = px.frames
    img = frames[min(frame, frames.shape[0] - 1)]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) * (255.0 / max(hi - lo, 1.0))).astype(np.uint8)
    if px.photometric == "MONOCHROME1":
        img = 255 - img
    x0, y0, x1, y1 = px.image_box
    return np.ascontiguousarray(img[y0:y1, x0:x1]), (x0, y0)


def _crop_boxes(rows: list[LabelRow], origin: tuple[int, int], width: int, height: int):
    out = []
    for row in rows:
        if row.box is None:
            continue
        bx0, by0, bx1, by1 = row.box
        x0, y0 = max(0, bx0 - origin[0]), max(0, by0 - origin[1])
        x1, y1 = min(width, bx1 - origin[0]), min(height, by1 - origin[1])
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1, y1))
    return tuple(out)


def ingest(
    dicom_dir: Path,
    labels_csv: Path,
    site: SiteDir,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """De-identify a PACS export and add its labelled images to the site's store."""
    secret = load_secret(site.secret)
    labels = read_labels(labels_csv)
    store = Store.create(site.store)
    pz = Pseudonymizer(secret)
    added, skipped = Counter(), Counter()

    def on_result(path: Path, result: DeidResult) -> None:
        rows = labels.lookup(result.original["accession"], result.original["sop_instance_uid"])
        if not rows:
            skipped["no label row for the image's accession number"] += 1
            return
        frame = rows[0].frame
        image_id = pz.opaque("image", f"{result.sop_instance_uid}#{frame}", 20).lower()
        if image_id in store:
            skipped["already in the store"] += 1
            return
        img, origin = store_image(result, frame)
        height, width = img.shape
        pathology = max((r.pathology for r in rows), key=PATHOLOGIES.index)
        birads = max((r.birads for r in rows if r.birads is not None), default=None)
        record = ImageRecord(
            image_id=image_id,
            patient=result.patient,
            pathology=pathology,
            device=device_name(result, rows),
            width=width,
            height=height,
            boxes=_crop_boxes(rows, origin, width, height),
            birads=birads,
            study=pz.opaque("study", result.study, 12).lower(),
            source="dicom",
        )
        store.add(record, img)
        added[pathology] += 1

    start = time.perf_counter()
    tree = deidentify_tree(Path(dicom_dir), None, secret, on_result=on_result, progress=progress)
    # labels.csv itself is not an image: do not report it as quarantined.
    labels_path = str(Path(labels_csv).resolve())
    keep = [
        i
        for i, link in enumerate(tree.private_links)
        if not ("quarantined" in link and str(Path(link["input_path"]).resolve()) == labels_path)
    ]
    quarantined_ids = {
        tree.private_links[i]["input"] for i in keep if "quarantined" in tree.private_links[i]
    }
    tree.quarantined = [q for q in tree.quarantined if q["input"] in quarantined_ids]
    tree.private_links = [tree.private_links[i] for i in keep]
    report = build_report(tree.outputs, tree.quarantined, time.perf_counter() - start)
    report["store"] = {"added": dict(added), "skipped": dict(skipped), "total": len(store)}
    site.private.mkdir(parents=True, exist_ok=True)
    write_report(site.private / "ingest-report", report)
    write_private_log(
        site.private / "deid-links.jsonl", tree, source=str(Path(dicom_dir).resolve())
    )
    site_log.record_ingest(
        site,
        "dicom-export",
        accepted=sum(added.values()),
        quarantined=len(tree.quarantined),
        added=dict(added),
        skipped=dict(skipped),
        store_total=len(store),
    )
    return report
