"""The HTML reports' kit: one Jinja2 environment over `templates/` and one figure style.

Every report is data first: its module builds a JSON-ready dict (written beside the page where
the report has a JSON file), and the page is rendered from that dict alone, so the numbers a
reader sees are the numbers a program can check. Pages are self-contained (figures embedded as
base64 PNG) and share one layout, `templates/base.html.j2`.
"""

from __future__ import annotations

import functools

import jinja2


def pct(value: float | None) -> str:
    """A fraction as a percentage with three significant digits ("n/a" for None)."""
    return "n/a" if value is None else f"{100 * float(value):.3g} %"


def fmt(value: object) -> str:
    """A number with three significant digits, anything else as text ("-" for None)."""
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("common.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing number is an error, not an empty cell
    )
    env.globals.update(pct=pct, fmt=fmt)
    return env


def render(template_name: str, **context: object) -> str:
    """Render `templates/<template_name>` with `context` (autoescaped, strict about undefined)."""
    return _environment().get_template(template_name).render(**context)


__all__ = ["fmt", "pct", "render"]
