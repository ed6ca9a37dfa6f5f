"""The de-identification report: data first (JSON), rendered once to HTML with a chart.

Both files sit in OUTPUT_DIR and leave the site with the images, so they carry only opaque ids,
pseudonyms, counts and PHI-free reasons; original paths stay in the site-private log.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from client.deid.profile import METHOD_CODES, PROFILE_NAME
from common.files import atomic_write_bytes, atomic_write_json
from common.reports import render

REPORT_FORMAT = "busgen-deid-report/1"


def build_report(outputs: list[dict], quarantined: list[dict], seconds: float) -> dict:
    reasons = collections.Counter(q["reason"] for q in quarantined)
    return {
        "format": REPORT_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": PROFILE_NAME,
        "method_codes": [{"code": c, "scheme": "DCM", "meaning": m} for c, m in METHOD_CODES],
        "counts": {
            "inputs": len(outputs) + len(quarantined),
            "deidentified": len(outputs),
            "quarantined": len(quarantined),
            "patients": len({o["patient"] for o in outputs}),
            "frames": sum(o["frames"] for o in outputs),
            "text_boxes_blanked": sum(o["text_boxes_blanked"] for o in outputs),
            "without_regions": sum(1 for o in outputs if not o["regions"]),
        },
        "quarantine_reasons": dict(sorted(reasons.items())),
        "seconds": round(seconds, 3),
        "outputs": outputs,
        "quarantined": quarantined,
    }


def _chart(report: dict) -> str:
    """Base64 PNG: outcomes per input and blanked text boxes per file."""
    from common.reports.figures import figure, figure_png_base64  # matplotlib: only when drawn

    fig, (a, b) = figure(9, 3.2, 1, 2)
    labels = ["de-identified"] + list(report["quarantine_reasons"])
    values = [report["counts"]["deidentified"]] + list(report["quarantine_reasons"].values())
    a.barh(range(len(labels)), values, color=["#2a7"] + ["#c54"] * (len(labels) - 1))
    a.set_yticks(range(len(labels)), [lbl[:38] for lbl in labels])
    a.set_xlabel("files")
    a.set_title("Outcome per input file")
    boxes = [o["text_boxes_blanked"] for o in report["outputs"]] or [0]
    b.hist(boxes, bins=range(0, max(boxes) + 2), color="#357")
    b.set_xlabel("burned-in text boxes blanked per file")
    b.set_ylabel("files")
    b.set_title("Clean Pixel Data")
    return figure_png_base64(fig)


def write_report(output_dir: Path, report: dict) -> tuple[Path, Path]:
    """Write deid-report.json and deid-report.html (atomically) into output_dir."""
    output_dir = Path(output_dir)
    json_path, html_path = output_dir / "deid-report.json", output_dir / "deid-report.html"
    atomic_write_json(json_path, report)
    html = render("deid.html.j2", r=report, chart=_chart(report))
    atomic_write_bytes(html_path, html.encode())
    return json_path, html_path
