"""Figures for the audit pages, returned as base64 PNG (the pages are self-contained)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from common.reports.figures import figure, figure_png_base64, image_png_base64


def image_grid(images: Sequence[np.ndarray], cols: int = 8, scale: int = 2) -> str:
    """A grid of uint8 images (all one size), pixel for pixel (no resampling by a plot)."""
    images = [np.asarray(i, np.uint8) for i in images]
    h, w = images[0].shape
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * (h + 2), cols * (w + 2)), 255, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        grid[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = img
    return image_png_base64(np.kron(grid, np.ones((scale, scale), np.uint8)))


def distance_histograms(groups: dict[str, np.ndarray], threshold: float, metric: str) -> str:
    """Overlaid histograms of nearest-training-image values with the copy threshold."""
    fig, ax = figure(5.0, 3.4)
    values = [v for v in groups.values() if len(v)]
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    bins = np.linspace(min(lo, threshold), max(hi, threshold), 40)
    for (name, v), colour in zip(groups.items(), ("tab:blue", "tab:green", "tab:orange")):
        if len(v):
            ax.hist(
                v, bins=bins, alpha=0.5, density=True, label=f"{name} (n={len(v)})", color=colour
            )
    ax.axvline(threshold, color="red", linestyle="--", label="copy threshold")
    ax.set_xlabel(f"{metric} to nearest training image")
    ax.set_ylabel("density")
    ax.legend()
    return figure_png_base64(fig)


def roc_loglog(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    epsilon: float | None,
    delta: float | None,
) -> str:
    """Log-log ROC curves of the attack, the chance line and the DP ceiling."""
    fig, ax = figure(4.6, 4.0)
    floor = 1e-4
    grid = np.logspace(-4, 0, 200)
    ax.plot(grid, grid, color="grey", linestyle=":", label="chance")
    if epsilon is not None and math.isfinite(epsilon):
        ax.plot(
            grid,
            np.minimum(1.0, math.exp(epsilon) * grid + (delta or 0.0)),
            color="red",
            linestyle="--",
            label=f"DP ceiling (eps={epsilon:.2f})",
        )
    for name, (fpr, tpr) in curves.items():
        f, t = np.maximum(np.asarray(fpr), floor), np.maximum(np.asarray(tpr), floor)
        ax.step(f, t, where="post", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return figure_png_base64(fig)
