"""The report kit: strict, escaped rendering, one layout, figures as PNG, templates packaged."""

import base64
import fnmatch
from io import BytesIO
from pathlib import Path

import jinja2
import numpy as np
import pytest
import tomllib
from PIL import Image
from setuptools import find_namespace_packages

from common.reports import pct, render
from common.reports.figures import figure, figure_png_base64, image_png_base64

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "common" / "reports" / "templates"


def test_render_escapes_and_refuses_missing_values():
    html = render("deid.html.j2", r=_deid_report("<script>"), chart="AAAA")
    assert "&lt;script&gt;" in html and "<script>" not in html
    with pytest.raises(jinja2.UndefinedError, match="seconds"):
        render("deid.html.j2", r={k: v for k, v in _deid_report("x").items() if k != "seconds"})
    assert pct(0.0123) == "1.23 %" and pct(None) == "n/a"


def test_every_report_extends_the_one_layout():
    pages = sorted(p.name for p in TEMPLATES.glob("*.html.j2") if p.name != "base.html.j2")
    assert pages == [
        "audit.html.j2",
        "audit_private.html.j2",
        "deid.html.j2",
        "demo.html.j2",
        "evidence.html.j2",
    ]
    for name in pages:
        text = (TEMPLATES / name).read_text()
        assert text.startswith('{% extends "base.html.j2" %}') and "<style>" not in text


def test_figures_are_closed_pngs_and_images_keep_their_pixels():
    from matplotlib import pyplot as plt

    fig, ax = figure(2.0, 1.5)
    ax.plot([0, 1], [1, 0])
    png = Image.open(BytesIO(base64.b64decode(figure_png_base64(fig))))
    assert png.format == "PNG" and png.width > 100
    assert plt.get_fignums() == []  # no figure left open in a long-running process
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    decoded = Image.open(BytesIO(base64.b64decode(image_png_base64(image))))
    assert np.array_equal(np.asarray(decoded), image)


def test_templates_are_package_data():
    """What setuptools will ship: the templates folder is a (namespace) package whose *.j2
    files match the package-data patterns in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_namespace_packages(str(ROOT), include=config["packages"]["find"]["include"])
    assert "common.reports.templates" in packages
    patterns = config["package-data"]["*"]
    files = sorted(TEMPLATES.glob("*.j2"))
    assert files and all(any(fnmatch.fnmatch(f.name, p) for p in patterns) for f in files)


def _deid_report(reason: str) -> dict:
    return {
        "created": "2026-01-01T00:00:00Z",
        "profile": "basic",
        "seconds": 1.0,
        "method_codes": [{"code": "113100", "meaning": "Basic Application Confidentiality"}],
        "counts": {"inputs": 1, "deidentified": 0, "quarantined": 1},
        "quarantined": [{"input": "in-0001", "reason": reason}],
        "outputs": [],
    }
