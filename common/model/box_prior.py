"""A differentially private prior over lesion boxes, for sampling without user-given boxes.

BUSGen fits kernel density estimates with bandwidth 0.001 to every training box and pickles
them, so its prior file replays the training geometry. Here the prior is a coarse histogram per
(pathology, device): one over box centres (grid x grid cells) and one over box width and height
(SIZE_EDGES bins each). Counts get Laplace noise before they are ever stored.

Privacy unit: the patient. At most `boxes_per_patient` boxes of each patient are counted, and
each box adds 1 to one centre cell and 1 to one size cell, so adding or removing a patient
changes the concatenated count vector by at most 2 * boxes_per_patient in L1. Laplace noise of
scale 2 * boxes_per_patient / epsilon on every cell gives epsilon-DP (delta = 0) for the whole
prior, all classes and devices together (they partition the boxes). Everything after that
(clipping negative counts, normalising, sampling) is post-processing. The noise comes from the
operating system's entropy source unless a test passes `noise_seed`: a noise seed that others
know would void the guarantee.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.files import atomic_write_json
from common.store import ImageRecord

LESION_CLASSES = ("benign", "malignant")
SIZE_EDGES = (0.0, 0.08, 0.15, 0.25, 0.4, 1.0)  # box width or height, as a fraction of the image
PRIOR_FORMAT = "busgen-box-prior/1"

Box = tuple[float, float, float, float]


def _bin(value: float, edges: np.ndarray) -> int:
    return int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2))


@dataclass
class BoxPrior:
    """Noisy box histograms keyed by "pathology/device"; boxes are sampled in [0,1] coordinates."""

    grid: int
    epsilon: float
    boxes_per_patient: int
    centre_counts: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # [grid, grid] (row=y, col=x)
    size_counts: dict[str, np.ndarray] = field(default_factory=dict)  # [bins, bins] (row=h, col=w)
    devices: tuple[str, ...] = ()

    @property
    def centre_edges(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.grid + 1)

    @classmethod
    def uniform(cls, devices: Sequence[str], grid: int = 6) -> BoxPrior:
        """A flat prior that looked at no data (epsilon 0): every cell equally likely."""
        prior = cls(grid=grid, epsilon=0.0, boxes_per_patient=0, devices=tuple(devices))
        nb = len(SIZE_EDGES) - 1
        for key in prior._keys():
            prior.centre_counts[key] = np.ones((grid, grid))
            prior.size_counts[key] = np.ones((nb, nb))
        return prior

    @classmethod
    def fit(
        cls,
        records: Iterable[ImageRecord],
        devices: Sequence[str],
        epsilon: float,
        grid: int = 6,
        boxes_per_patient: int = 2,
        noise_seed: int | None = None,
    ) -> BoxPrior:
        """Count boxes from store records and add Laplace noise (see the module docstring)."""
        if epsilon <= 0:
            raise DataError(f"box prior: epsilon must be > 0, got {epsilon}")
        if boxes_per_patient < 1:
            raise DataError(f"box prior: boxes_per_patient must be >= 1, got {boxes_per_patient}")
        prior = cls(
            grid=grid,
            epsilon=float(epsilon),
            boxes_per_patient=boxes_per_patient,
            devices=tuple(devices),
        )
        nb = len(SIZE_EDGES) - 1
        centre = {k: np.zeros((grid, grid)) for k in prior._keys()}
        size = {k: np.zeros((nb, nb)) for k in prior._keys()}
        used: dict[str, int] = defaultdict(int)
        cedges, sedges = prior.centre_edges, np.asarray(SIZE_EDGES)
        for rec in sorted(records, key=lambda r: (r.patient, r.image_id)):
            key = f"{rec.pathology}/{rec.device}"
            if key not in centre:
                continue
            for x0, y0, x1, y1 in rec.boxes:
                if used[rec.patient] >= boxes_per_patient:
                    break
                used[rec.patient] += 1
                cx, cy = (x0 + x1) / 2 / rec.width, (y0 + y1) / 2 / rec.height
                w, h = (x1 - x0) / rec.width, (y1 - y0) / rec.height
                centre[key][_bin(cy, cedges), _bin(cx, cedges)] += 1
                size[key][_bin(h, sedges), _bin(w, sedges)] += 1
        rng = np.random.default_rng(noise_seed)
        scale = 2 * boxes_per_patient / epsilon
        for key in prior._keys():
            prior.centre_counts[key] = centre[key] + rng.laplace(0.0, scale, centre[key].shape)
            prior.size_counts[key] = size[key] + rng.laplace(0.0, scale, size[key].shape)
        return prior

    def _keys(self) -> list[str]:
        return [f"{p}/{d}" for p in LESION_CLASSES for d in self.devices]

    def _weights(
        self, table: dict[str, np.ndarray], pathology: str, device: str | None
    ) -> np.ndarray:
        keys = [f"{pathology}/{d}" for d in (self.devices if device is None else (device,))]
        missing = [k for k in keys if k not in table]
        if missing:
            raise DataError(
                f"box prior has no histogram for {missing[0]} (devices: {list(self.devices)})"
            )
        w = np.clip(sum(table[k] for k in keys), 0.0, None).ravel()
        return w / w.sum() if w.sum() > 0 else np.full(w.shape, 1.0 / w.size)

    def sample(
        self, pathology: str, device: str | None, n: int, rng: np.random.Generator
    ) -> list[Box]:
        """n boxes (x0, y0, x1, y1) in [0,1] image coordinates; uniform within each cell."""
        if pathology not in LESION_CLASSES:
            raise DataError(
                f"box prior: only {LESION_CLASSES} have lesion boxes, got {pathology!r}"
            )
        cw, sw = (
            self._weights(self.centre_counts, pathology, device),
            self._weights(self.size_counts, pathology, device),
        )
        cedges, sedges, nb = self.centre_edges, np.asarray(SIZE_EDGES), len(SIZE_EDGES) - 1
        boxes = []
        for _ in range(n):
            cy_i, cx_i = divmod(int(rng.choice(cw.size, p=cw)), self.grid)
            h_i, w_i = divmod(int(rng.choice(sw.size, p=sw)), nb)
            cx = rng.uniform(cedges[cx_i], cedges[cx_i + 1])
            cy = rng.uniform(cedges[cy_i], cedges[cy_i + 1])
            w = rng.uniform(max(sedges[w_i], 0.03), min(sedges[w_i + 1], 0.9))
            h = rng.uniform(max(sedges[h_i], 0.03), min(sedges[h_i + 1], 0.9))
            x0, y0 = (
                float(np.clip(cx - w / 2, 0.0, 1.0 - w)),
                float(np.clip(cy - h / 2, 0.0, 1.0 - h)),
            )
            boxes.append((x0, y0, x0 + w, y0 + h))
        return boxes

    def to_json(self) -> dict:
        return {
            "format": PRIOR_FORMAT,
            "mechanism": "laplace" if self.epsilon > 0 else "none (uniform, no data)",
            "epsilon": self.epsilon,
            "delta": 0.0,
            "unit": "patient",
            "boxes_per_patient": self.boxes_per_patient,
            "l1_sensitivity": 2 * self.boxes_per_patient,
            "grid": self.grid,
            "size_edges": list(SIZE_EDGES),
            "devices": list(self.devices),
            "centre_counts": {k: np.round(v, 4).tolist() for k, v in self.centre_counts.items()},
            "size_counts": {k: np.round(v, 4).tolist() for k, v in self.size_counts.items()},
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "<box prior>") -> BoxPrior:
        if data.get("format") != PRIOR_FORMAT:
            raise DataError(f"{source}: not a box prior (format {data.get('format')!r})")
        if list(data["size_edges"]) != list(SIZE_EDGES):
            raise DataError(
                f"{source}: size bins {data['size_edges']} differ from {list(SIZE_EDGES)}"
            )
        return cls(
            grid=int(data["grid"]),
            epsilon=float(data["epsilon"]),
            boxes_per_patient=int(data["boxes_per_patient"]),
            centre_counts={k: np.asarray(v, float) for k, v in data["centre_counts"].items()},
            size_counts={k: np.asarray(v, float) for k, v in data["size_counts"].items()},
            devices=tuple(data["devices"]),
        )

    def save(self, path: str | Path) -> None:
        atomic_write_json(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> BoxPrior:
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text()), str(path))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: cannot read box prior: {exc}") from exc
