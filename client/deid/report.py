"""The de-identification report: data first (JSON), rendered once to HTML with a chart.

Both files sit in OUTPUT_DIR and leave the site with the images, so they carry only opaque ids,
pseudonyms, counts and PHI-free reasons; original paths stay in the site-private log.
"""

from __future__ import annotations

import base64
import collections
import io
import time
from pathlib import Path

import jinja2

from client.deid.profile import METHOD_CODES, PROFILE_NAME
from common.store import atomic_write_bytes, atomic_write_json

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    labels = ["de-identified"] + list(report["quarantine_reasons"])
    values = [report["counts"]["deidentified"]] + list(report["quarantine_reasons"].values())
    a.barh(range(len(labels)), values, color=["#2a7"] + ["#c54"] * (len(labels) - 1))
    a.set_yticks(range(len(labels)), [lbl[:38] for lbl in labels], fontsize=7)
    a.set_xlabel("files")
    a.set_title("Outcome per input file", fontsize=9)
    boxes = [o["text_boxes_blanked"] for o in report["outputs"]] or [0]
    b.hist(boxes, bins=range(0, max(boxes) + 2), color="#357")
    b.set_xlabel("burned-in text boxes blanked per file")
    b.set_ylabel("files")
    b.set_title("Clean Pixel Data", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


_TEMPLATE = jinja2.Template(
    """<!doctype html>
<html><head><meta charset="utf-8"><title>De-identification report</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}
td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-size:90%}</style></head><body>
<h1>De-identification report</h1>
<p>{{ r.created }} &middot; profile <b>{{ r.profile }}</b> &middot; {{ r.seconds }} s</p>
<p>Options (DeidentificationMethodCodeSequence, CID 7050):
{% for c in r.method_codes %}{{ c.code }} {{ c.meaning }}{% if not loop.last %}; {% endif %}{% endfor %}</p>
<table>{% for k, v in r.counts.items() %}<tr><th align=left>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<img alt="outcomes" src="data:image/png;base64,{{ chart }}">
<h2>Quarantined inputs</h2>
{% if r.quarantined %}<p>Not written to this folder. Original paths are in the site-private log.</p>
<table><tr><th>input id</th><th>reason</th></tr>
{% for q in r.quarantined %}<tr><td>{{ q.input }}</td><td>{{ q.reason }}</td></tr>{% endfor %}</table>
{% else %}<p>None.</p>{% endif %}
<h2>De-identified files</h2>
<table><tr><th>input id</th><th>output</th><th>frames</th><th>size</th><th>regions</th><th>text boxes blanked</th></tr>
{% for o in r.outputs %}<tr><td>{{ o.input }}</td><td>{{ o.output }}</td><td>{{ o.frames }}</td>
<td>{{ o.columns }}x{{ o.rows }} {{ o.photometric }}</td><td>{{ o.regions }}</td><td>{{ o.text_boxes_blanked }}</td></tr>
{% endfor %}</table></body></html>
""",
    autoescape=True,
)


def write_report(output_dir: Path, report: dict) -> tuple[Path, Path]:
    """Write deid-report.json and deid-report.html (atomically) into output_dir."""
    output_dir = Path(output_dir)
    json_path, html_path = output_dir / "deid-report.json", output_dir / "deid-report.html"
    atomic_write_json(json_path, report)
    atomic_write_bytes(html_path, _TEMPLATE.render(r=report, chart=_chart(report)).encode())
    return json_path, html_path
