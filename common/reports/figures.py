"""Figures for the HTML reports: one small, consistent style, embedded as base64 PNG.

Importing this module selects matplotlib's Agg backend (reports are drawn without a display,
often in worker processes) and sets the style once for every report figure.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
DPI = 110
matplotlib.rcParams.update(STYLE)


def figure(width: float = 5.0, height: float = 3.4, nrows: int = 1, ncols: int = 1, **kw: Any):
    """A new (figure, axes) pair in the report style; width and height in inches."""
    return plt.subplots(nrows, ncols, figsize=(width, height), **kw)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (trimmed to its content); the figure is closed."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def figure_png_base64(fig: Figure) -> str:
    """The figure as base64 PNG, for `<img src="data:image/png;base64,...">`; it is closed."""
    return base64.b64encode(figure_png(fig)).decode()


def image_png_base64(image: np.ndarray) -> str:
    """A uint8 grayscale image, pixel for pixel, as base64 PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
