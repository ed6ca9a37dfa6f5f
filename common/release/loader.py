"""Load a release bundle as a torch Dataset for researchers' training code.

Each item is `(image, labels)`: image a float32 tensor [C, H, W] in [0, 1]; labels a dict with
`pathology` (str, "" when absent), `birads` (int, -1 when absent), `device` (str, "" when absent)
and `box` (float32 tensor [4] as x0, y0, x1, y1 pixels; NaN when the image has no lesion box).
Missing values get placeholders so torch's default collate batches them without a custom
function.

The dataset is a plain map-style dataset (`__len__` and `__getitem__`), which is all
`torch.utils.data.DataLoader` needs; torch is imported when a dataset is opened, so the
researcher's tool installs and verifies bundles without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.release.bundle import METADATA, verify_bundle


class ReleaseDataset:
    """The images and labels of one release bundle, read lazily from its PNGs."""

    def __init__(self, root: Path, rows: list[dict]) -> None:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise DataError(
                "loading a release as a torch dataset needs PyTorch: "
                "pip install torch (verifying and fetching do not)"
            ) from exc
        self.root = Path(root)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple:
        import torch
        from PIL import Image

        row = self.rows[index]
        with Image.open(self.root / "train" / row["file_name"]) as im:
            array = np.asarray(im)
        image = torch.from_numpy(array.astype(np.float32) / 255.0)
        image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        box = row.get("box")
        labels = {
            "pathology": row.get("pathology") or "",
            "birads": int(row["birads"]) if row.get("birads") is not None else -1,
            "device": row.get("device") or "",
            "box": torch.tensor(
                box if box is not None else [float("nan")] * 4, dtype=torch.float32
            ),
        }
        return image, labels


def load_release(bundle_dir: Path, trust_file: Path | None = None) -> ReleaseDataset:
    """Open a release bundle; with `trust_file`, verify it completely first."""
    bundle = Path(bundle_dir)
    if trust_file is not None:
        verify_bundle(bundle, trust_file)
    path = bundle / METADATA
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing (not a release bundle)") from exc
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON lines ({exc})") from exc
    return ReleaseDataset(bundle, rows)
