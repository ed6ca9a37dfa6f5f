"""BUSI (Al-Dhabyani 2020, GE LOGIQ E9): `Dataset_BUSI_with_GT/{benign,malignant,normal}/`.

Images are `benign (N).png`; masks `benign (N)_mask.png` plus `_mask_1.png`, ... for more
lesions, OR-merged. The dataset has no patient ids, so each image is its own patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from client.importers.common import Item, Skip, mask_boxes, read_gray
from common.errors import DataError

CLASSES = ("benign", "malignant", "normal")
DEVICE = "GE LOGIQ E9"
_MASK = re.compile(r"_mask(_\d+)?$")


def _root(dataset_dir: Path) -> Path:
    for cand in (dataset_dir, dataset_dir / "Dataset_BUSI_with_GT"):
        if any((cand / c).is_dir() for c in CLASSES):
            return cand
    raise DataError(
        f"{dataset_dir}: not a BUSI folder (expected benign/, malignant/, normal/ "
        "or Dataset_BUSI_with_GT/)"
    )


def read(dataset_dir: Path) -> Iterator[Item | Skip]:
    root = _root(Path(dataset_dir))
    for pathology in CLASSES:
        folder = root / pathology
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.png")):
            if _MASK.search(path.stem):
                continue
            name = f"{pathology}/{path.name}"
            image = read_gray(path)
            if image is None:
                yield Skip(name, "unreadable image")
                continue
            masks = [
                read_gray(m) for m in sorted(folder.glob(f"{_glob_escape(path.stem)}_mask*.png"))
            ]
            masks = [m for m in masks if m is not None and m.shape == image.shape]
            if pathology != "normal" and not masks:
                yield Skip(name, "no readable mask of the image's size")
                continue
            merged = np.maximum.reduce(masks) if masks else np.zeros_like(image)
            boxes = mask_boxes(merged) if pathology != "normal" else ()
            yield Item(name, name, pathology, image, boxes, None, DEVICE)


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)
