"""Write generated images to a directory: images/NNNNN.png plus metadata.jsonl.

The directory is assembled under a temporary name and renamed into place at the end, so an
interrupted run never leaves something that looks like a complete output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.config import Config, ModelConfig
from common.errors import DataError
from common.files import staged_directory
from common.model.box_prior import BoxPrior
from common.model.sampling import generate
from common.store import PATHOLOGIES


def condition_plan(
    n: int, pathology: str, device: str | None, model_cfg: ModelConfig
) -> tuple[list[str], list[str]]:
    """Per-image conditions: one class or an equal 'mix'; one device or the model's devices cycled."""
    if pathology == "mix":
        paths = [PATHOLOGIES[i % len(PATHOLOGIES)] for i in range(n)]
    elif pathology in PATHOLOGIES:
        paths = [pathology] * n
    else:
        raise DataError(f"pathology must be mix or one of {PATHOLOGIES}, got {pathology!r}")
    devices = [device] if device else list(model_cfg.devices)
    return paths, [devices[i % len(devices)] for i in range(n)]


def base_box_prior(meta: dict) -> BoxPrior | None:
    """The DP box prior stored in a base model's metadata (None if the base has none)."""
    data = meta.get("box_prior")
    return BoxPrior.from_json(data, "base model metadata") if data else None


def generate_to_dir(
    out_dir: str | Path,
    cfg: Config,
    unet,
    model_cfg: ModelConfig,
    n: int,
    *,
    pathology: str = "mix",
    device: str | None = None,
    seed: int = 0,
    box_prior: BoxPrior | None = None,
    provenance: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Generate n images and write them with one metadata row each; returns a summary."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: output directory exists and is not empty; choose a new one")
    paths, devices = condition_plan(n, pathology, device, model_cfg)
    batch = generate(
        unet,
        model_cfg,
        cfg.sampling,
        n,
        paths,
        devices,
        seed=seed,
        box_prior=box_prior,
        progress=progress,
    )
    with staged_directory(out) as tmp:  # replaces `out` only when it is empty (checked above)
        (tmp / "images").mkdir()
        rows = []
        for i, row in enumerate(batch.rows()):
            name = f"images/{i:05d}.png"
            Image.fromarray(batch.images[i], mode="L").save(tmp / name)
            rows.append({"file": name, **row, **batch.meta, **(provenance or {})})
        (tmp / "metadata.jsonl").write_text(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        )
    counts = {p: paths.count(p) for p in sorted(set(paths))}
    return {
        "out": str(out),
        "n": n,
        "pathology_counts": counts,
        "seed": seed,
        "box_prior_epsilon": batch.meta["box_prior_epsilon"],
        **(provenance or {}),
        "mean_intensity": float(np.mean(batch.images)),
    }
