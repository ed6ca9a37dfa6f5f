"""Labelled image sets for the evidence protocol: real stores and synthetic folders.

Everything becomes a `LabelledSet` (images at the classifier's size, 0/1 labels, the patient
each image belongs to, its device). Only benign and malignant images take part: the task is
benign-vs-malignant, so normal images are dropped at load time.

Real data is split by patient with the store's own deterministic split (`Store.split`), the same
one the generator's training uses, so a held-out test patient never trained the classifier nor,
through a release, the generator. `check_patient_disjoint` makes that a checked fact per run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import DataError
from common.store import Store

TASK_LABELS = {"benign": 0, "malignant": 1}


@dataclass(frozen=True)
class LabelledSet:
    """Images [N,S,S] float32 in [-1,1], labels [N] (1 = malignant), patients and devices [N]."""

    images: np.ndarray
    labels: np.ndarray
    patients: np.ndarray
    devices: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> LabelledSet:
        return LabelledSet(
            self.images[index],
            self.labels[index],
            self.patients[index],
            self.devices[index],
            self.source,
        )

    def where_device(self, devices: set[str] | tuple[str, ...]) -> LabelledSet:
        return self.take(np.flatnonzero(np.isin(self.devices, list(devices))))

    def counts(self) -> dict[str, int]:
        return {
            "images": int(len(self)),
            "benign": int((self.labels == 0).sum()),
            "malignant": int((self.labels == 1).sum()),
            "patients": int(len(np.unique(self.patients))),
        }


def concat(sets: list[LabelledSet], source: str) -> LabelledSet:
    sets = [s for s in sets if len(s)]
    if not sets:
        raise DataError(f"{source}: no benign or malignant images")
    return LabelledSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        np.concatenate([s.patients for s in sets]),
        np.concatenate([s.devices for s in sets]),
        source,
    )


def load_store_side(store_dir: Path, side: str, holdout_fraction: float, size: int) -> LabelledSet:
    """The `side` ("train" or "holdout") of a store's patient split, benign/malignant only.

    Patient ids are prefixed with the store's directory name so two sites' pseudonyms can never
    collide when sets are pooled.
    """
    if side not in ("train", "holdout"):
        raise ValueError(f"side must be 'train' or 'holdout', got {side!r}")
    store = Store(Path(store_dir))
    train, hold = store.split(holdout_fraction)
    records = [r for r in (train if side == "train" else hold) if r.pathology in TASK_LABELS]
    images, _ = store.load_arrays(records, size)
    tag = store.root.name
    return LabelledSet(
        images=images,
        labels=np.array([TASK_LABELS[r.pathology] for r in records], dtype=np.int64),
        patients=np.array([f"{tag}/{r.patient}" for r in records], dtype=object),
        devices=np.array([r.device for r in records], dtype=object),
        source=f"{store.root}:{side}",
    )


def _metadata_path(folder: Path) -> Path:
    for candidate in (folder / "metadata.jsonl", folder / "train" / "metadata.jsonl"):
        if candidate.exists():
            return candidate
    raise DataError(
        f"{folder}: no metadata.jsonl (expected a synthetic image folder or a "
        "release bundle with train/metadata.jsonl)"
    )


def load_synthetic(folder: Path, size: int) -> LabelledSet:
    """A folder of PNGs with metadata.jsonl (file_name, pathology, device, ...), or a release
    bundle whose `train/` folder has that layout. Synthetic images have no patient; each image
    is its own unit."""
    folder = Path(folder)
    meta = _metadata_path(folder)
    images, labels, devices, names = [], [], [], []
    for n, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, pathology = row["file_name"], row.get("pathology")
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{meta}: line {n} is not a metadata row with file_name: {exc}"
            ) from exc
        if pathology not in TASK_LABELS:
            continue
        path = meta.parent / name
        try:
            with Image.open(path) as im:
                img = im.convert("L").resize((size, size), Image.BILINEAR)
        except OSError as exc:
            raise DataError(
                f"{path}: cannot read synthetic image (listed in {meta} line {n}): {exc}"
            ) from exc
        images.append(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)
        labels.append(TASK_LABELS[pathology])
        devices.append(row.get("device") or "")
        names.append(f"synthetic:{meta.parent}/{name}")
    if not images:
        raise DataError(f"{meta}: no benign or malignant images listed")
    return LabelledSet(
        np.stack(images),
        np.array(labels, dtype=np.int64),
        np.array(names, dtype=object),
        np.array(devices, dtype=object),
        str(folder),
    )


def check_patient_disjoint(train: LabelledSet, test: LabelledSet) -> None:
    """Raise if any patient contributes images to both the training and the test set."""
    shared = set(train.patients.tolist()) & set(test.patients.tolist())
    if shared:
        example = sorted(shared)[:3]
        raise DataError(
            f"evidence: {len(shared)} patients are in both {train.source} and "
            f"{test.source} (e.g. {example}); the test set must be patient-disjoint"
        )


def stratified_subset(data: LabelledSet, n: int, seed: int) -> LabelledSet:
    """`n` images keeping the class mix; for a fixed seed, smaller subsets nest in larger ones
    (so a scaling curve adds data rather than redrawing it)."""
    if n >= len(data):
        return data
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    # Interleave the classes in proportion so every prefix keeps the mix.
    pos = order[data.labels[order] == 1]
    neg = order[data.labels[order] == 0]
    frac = len(pos) / len(data)
    n_pos = min(len(pos), max(1, int(round(n * frac))))
    n_neg = min(len(neg), n - n_pos)
    return data.take(np.sort(np.r_[pos[:n_pos], neg[:n_neg]]))


def release_epsilon(folder: Path) -> float | None:
    """The epsilon a release bundle's manifest states (None if it states none or infinity).

    Raises if `folder` has no manifest: a bare synthetic folder must be given its epsilon
    explicitly, because a privacy-utility point without its epsilon would be meaningless.
    """
    manifest = Path(folder) / "manifest.json"
    if not manifest.exists():
        raise DataError(
            f"{folder}: no manifest.json, so its epsilon is unknown; give it as "
            f"{folder}@EPSILON (or @inf for a release without DP)"
        )
    try:
        value = json.loads(manifest.read_text()).get("epsilon")
    except ValueError as exc:
        raise DataError(f"{manifest}: not valid JSON: {exc}") from exc
    if value is None or value == "inf":
        return None
    eps = float(value)
    return None if eps == float("inf") else eps
