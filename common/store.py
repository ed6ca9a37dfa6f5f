"""The de-identified training store a site keeps (and the coordinator keeps for pretraining).

Layout of a store directory::

    STORE/
      store.json        {"format": "busgen-store/1"}
      index.jsonl       one ImageRecord per line (append-only; the last record for an id wins)
      images/<image_id>.png   8-bit grayscale, as de-identified, original geometry

Every record carries a pseudonymous patient id, so the unit of privacy (the patient) is always
known. Images are kept at their own size; `load_arrays` resizes to the model's resolution and
scales boxes with them. Train/holdout membership is a deterministic function of the patient
pseudonym, so every tool agrees on it without storing it and no patient is on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import DataError
from common.files import atomic_write_bytes, atomic_write_json

STORE_FORMAT = "busgen-store/1"
PATHOLOGIES = ("normal", "benign", "malignant")


@dataclass(frozen=True)
class ImageRecord:
    """One stored image and its labels. Boxes are [x0, y0, x1, y1] in this image's pixels."""

    image_id: str
    patient: str
    pathology: str
    device: str
    width: int
    height: int
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    birads: int | None = None
    study: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pathology not in PATHOLOGIES:
            raise DataError(
                f"image {self.image_id}: pathology must be one of {PATHOLOGIES}, "
                f"got {self.pathology!r}"
            )

    @classmethod
    def from_json(cls, data: dict) -> ImageRecord:
        data = dict(data)
        data["boxes"] = tuple(tuple(int(v) for v in b) for b in data.get("boxes", ()))
        return cls(**data)

    def to_json(self) -> dict:
        out = asdict(self)
        out["boxes"] = [list(b) for b in self.boxes]
        return out


def is_holdout(patient: str, fraction: float) -> bool:
    """Deterministic, patient-level split: the same patient is always on the same side."""
    digest = hashlib.sha256(f"split:{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class Store:
    """A directory of de-identified images with an append-only JSONL index."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        meta = self.root / "store.json"
        if not meta.exists():
            raise DataError(
                f"{self.root}: not a busgen store (no store.json); "
                "create one with `busgen-site ingest`, `import` or `simulate`"
            )
        fmt = json.loads(meta.read_text()).get("format")
        if fmt != STORE_FORMAT:
            raise DataError(f"{meta}: unsupported store format {fmt!r}, expected {STORE_FORMAT}")
        self._records: dict[str, ImageRecord] | None = None

    @classmethod
    def create(cls, root: Path) -> Store:
        """Open `root` as a store, creating an empty one if needed."""
        root = Path(root)
        (root / "images").mkdir(parents=True, exist_ok=True)
        if not (root / "store.json").exists():
            atomic_write_json(root / "store.json", {"format": STORE_FORMAT})
        return cls(root)

    @property
    def index_path(self) -> Path:
        return self.root / "index.jsonl"

    def image_path(self, image_id: str) -> Path:
        return self.root / "images" / f"{image_id}.png"

    def _load(self) -> dict[str, ImageRecord]:
        if self._records is None:
            records: dict[str, ImageRecord] = {}
            if self.index_path.exists():
                for n, line in enumerate(self.index_path.read_text().splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        rec = ImageRecord.from_json(json.loads(line))
                    except (ValueError, TypeError) as exc:
                        raise DataError(
                            f"{self.index_path}: line {n} is not a valid record: {exc}"
                        ) from exc
                    records[rec.image_id] = rec
            self._records = records
        return self._records

    def records(self) -> list[ImageRecord]:
        """All records, sorted by image id (a stable order for seeded runs)."""
        return [self._load()[k] for k in sorted(self._load())]

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._load()

    def add(self, record: ImageRecord, image: np.ndarray) -> None:
        """Store one image (2-D uint8) and append its record; the image lands before the index."""
        if image.ndim != 2 or image.dtype != np.uint8:
            raise DataError(
                f"image {record.image_id}: expected a 2-D uint8 array, "
                f"got {image.dtype} {image.shape}"
            )
        if image.shape != (record.height, record.width):
            raise DataError(
                f"image {record.image_id}: array {image.shape} does not match "
                f"record {record.height}x{record.width}"
            )
        from io import BytesIO

        buf = BytesIO()
        Image.fromarray(image, mode="L").save(buf, format="PNG")
        atomic_write_bytes(self.image_path(record.image_id), buf.getvalue())
        with open(self.index_path, "a") as fh:
            fh.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._load()[record.image_id] = record

    def load_image(self, record: ImageRecord) -> np.ndarray:
        path = self.image_path(record.image_id)
        try:
            return np.asarray(Image.open(path).convert("L"))
        except OSError as exc:
            raise DataError(f"{path}: cannot read stored image: {exc}") from exc

    def patients(self) -> list[str]:
        return sorted({r.patient for r in self._load().values()})

    def split(self, fraction: float) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """(train, holdout) records by patient; see `is_holdout`."""
        train, hold = [], []
        for rec in self.records():
            (hold if is_holdout(rec.patient, fraction) else train).append(rec)
        return train, hold

    def iter_arrays(
        self, records: list[ImageRecord], size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, ImageRecord]]:
        """Yield (image float32 [size,size] in [-1,1], box mask float32 [size,size], record)."""
        for rec in records:
            img = Image.fromarray(self.load_image(rec)).resize((size, size), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
            yield arr, box_mask(rec.boxes, rec.width, rec.height, size), rec

    def load_arrays(self, records: list[ImageRecord], size: int) -> tuple[np.ndarray, np.ndarray]:
        """Stack `iter_arrays` into ([N,size,size] images, [N,size,size] masks)."""
        imgs, masks = [], []
        for arr, mask, _ in self.iter_arrays(records, size):
            imgs.append(arr)
            masks.append(mask)
        if not imgs:
            return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.float32)
        return np.stack(imgs), np.stack(masks)


def scale_boxes(
    boxes, width: int, height: int, size: int
) -> list[tuple[float, float, float, float]]:
    """Boxes in original pixels -> boxes in a size x size resized image."""
    sx, sy = size / width, size / height
    return [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in boxes]


def box_mask(boxes, width: int, height: int, size: int) -> np.ndarray:
    """Binary lesion-box mask at model resolution (the generator's extra input channel)."""
    mask = np.zeros((size, size), np.float32)
    for x0, y0, x1, y1 in scale_boxes(boxes, width, height, size):
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(size, int(np.ceil(x1))), min(size, int(np.ceil(y1)))
        mask[r0:r1, c0:c1] = 1.0
    return mask
