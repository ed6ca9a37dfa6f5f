"""RUN_DIR/report.html: what the demo did, in pictures, for a consortium audience.

Data first: `summary.json` holds every number; this module only renders it. The page is
self-contained (plots and image grids embedded as base64 PNG) and shows no real image: sample
images come from the released synthetic bundles only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from common.files import atomic_write_bytes
from common.reports import render
from common.reports.figures import figure, figure_png_base64


def epsilon_plot(history: list[dict]) -> str | None:
    """Epsilon spent per site after each round (each site's own accountant)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        if not row.get("ok"):
            continue
        for site, metrics in row.get("train_metrics", {}).items():
            if metrics.get("epsilon") is not None:
                series.setdefault(site, []).append((row["round"], float(metrics["epsilon"])))
    if not series:
        return None
    fig, ax = figure(5, 3.2)
    for site, points in sorted(series.items()):
        rounds, eps = zip(*points)
        ax.plot(rounds, eps, marker="o", label=site)
    ax.set_xlabel("federated round")
    ax.set_ylabel("epsilon spent (per patient)")
    ax.set_title("Privacy budget over rounds")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure_png_base64(fig)


def loss_plot(history: list[dict]) -> str | None:
    """Held-out validation loss of the global adapter after each round."""
    points = [(r["round"], r["val_loss"]) for r in history if r.get("ok") and "val_loss" in r]
    if not points:
        return None
    fig, ax = figure(5, 3.2)
    ax.plot(*zip(*points), marker="o")
    ax.set_xlabel("federated round")
    ax.set_ylabel("validation denoising loss")
    ax.set_title("Global adapter on held-out patients")
    ax.grid(alpha=0.3)
    return figure_png_base64(fig)


def release_grid(bundle: Path, per_class: int = 6) -> str | None:
    """A grid of released synthetic images, one row per pathology."""
    meta = bundle / "train" / "metadata.jsonl"
    if not meta.exists():
        return None
    rows: dict[str, list[Path]] = {}
    for line in meta.read_text().splitlines():
        item = json.loads(line)
        rows.setdefault(item["pathology"], []).append(bundle / "train" / item["file_name"])
    classes = [c for c in ("normal", "benign", "malignant") if c in rows]
    if not classes:
        return None
    fig, axes = figure(1.3 * per_class, 1.4 * len(classes), len(classes), per_class, squeeze=False)
    for r, cls in enumerate(classes):
        for c in range(per_class):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(rows[cls]):
                ax.imshow(
                    np.asarray(Image.open(rows[cls][c]).convert("L")), cmap="gray", vmin=0, vmax=255
                )
        axes[r][0].set_title(cls, loc="left")
    return figure_png_base64(fig)


def _auc(entry) -> str:
    """An evidence entry: {"auc": estimate, "auc_ci": [low, high], "n_images": ...}."""
    if not isinstance(entry, dict) or entry.get("auc") is None:
        return "-"
    low, high = entry.get("auc_ci") or (float("nan"), float("nan"))
    return f"{entry['auc']:.3f} (95% CI {low:.3f}-{high:.3f}; {entry.get('n_images', '?')} training images)"


def render_report(run_dir: Path, summary: dict) -> Path:
    """Write RUN_DIR/report.html from the summary (and the release bundles it names)."""
    history = summary.get("federation", {}).get("history", [])
    grids = {
        site: release_grid(Path(rel["bundle"])) for site, rel in summary.get("releases", {}).items()
    }
    img = {"epsilon": epsilon_plot(history), "loss": loss_plot(history), "grids": grids}
    html = render(
        "demo.html.j2", s=summary, img=img, auc=_auc, stages=list(summary.get("timings", {}))
    )
    out = Path(run_dir) / "report.html"
    atomic_write_bytes(out, html.encode())
    return out
