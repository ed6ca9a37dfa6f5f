"""RUN_DIR/report.html: what the demo did, in pictures, for a consortium audience.

Data first: `summary.json` holds every number; this module only renders it. The page is
self-contained (plots and image grids embedded as base64 PNG) and shows no real image: sample
images come from the released synthetic bundles only.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402
from PIL import Image  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


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
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for site, points in sorted(series.items()):
        rounds, eps = zip(*points)
        ax.plot(rounds, eps, marker="o", label=site)
    ax.set_xlabel("federated round")
    ax.set_ylabel("epsilon spent (per patient)")
    ax.set_title("Privacy budget over rounds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def loss_plot(history: list[dict]) -> str | None:
    """Held-out validation loss of the global adapter after each round."""
    points = [(r["round"], r["val_loss"]) for r in history if r.get("ok") and "val_loss" in r]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(*zip(*points), marker="o")
    ax.set_xlabel("federated round")
    ax.set_ylabel("validation denoising loss")
    ax.set_title("Global adapter on held-out patients")
    ax.grid(alpha=0.3)
    return _png(fig)


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
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(1.3 * per_class, 1.4 * len(classes)), squeeze=False
    )
    for r, cls in enumerate(classes):
        for c in range(per_class):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(rows[cls]):
                ax.imshow(
                    np.asarray(Image.open(rows[cls][c]).convert("L")), cmap="gray", vmin=0, vmax=255
                )
        axes[r][0].set_title(cls, fontsize=8, loc="left")
    return _png(fig)


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>busgen-fed demo report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; } img { max-width: 100%; }
.row { display: flex; gap: 1em; flex-wrap: wrap; }
</style></head><body>
<h1>busgen-fed: federated DP demo on simulated hospitals</h1>
<p class="note">Profile <b>{{ s.profile }}</b>, seed {{ s.seed }}. All data is simulated by the
project's breast-ultrasound phantom; no real patient is involved. Total wall time
{{ "%.1f"|format(s.total_seconds) }} s.</p>

<h2>Privacy statement</h2>
<p>Unit of privacy: <b>the patient</b>. Each site trains LoRA adapters with DP-SGD (patient-level
Poisson sampling and clipping) and keeps its own ledger; epsilon is computed by the
<b>{{ s.privacy.accountant }}</b> accountant over the site's whole history.
The consortium figure is the largest site epsilon, never an average.</p>
<table><tr><th>site</th><th>epsilon</th><th>delta</th><th>rounds joined</th><th>failures</th><th>val. loss</th></tr>
{% for site, row in s.privacy.sites.items() %}
<tr><td>{{ site }}</td><td>{{ fmt(row.epsilon) }}</td><td>{{ fmt(row.delta) }}</td>
<td>{{ row.rounds_joined }}</td><td>{{ row.failures }}</td><td>{{ fmt(row.val_loss) }}</td></tr>
{% endfor %}</table>

<h2>Stages</h2>
<table><tr><th>stage</th><th>seconds</th></tr>
{% for name in stages if name in s.timings %}<tr><td>{{ name }}</td><td>{{ s.timings[name] }}</td></tr>{% endfor %}
</table>

<h2>Sites: de-identified ingest</h2>
<table><tr><th>site</th><th>device</th><th>patients</th><th>DICOM files</th><th>de-identified</th>
<th>quarantined</th><th>text boxes blanked</th><th>images in store (normal / benign / malignant)</th></tr>
{% for site, row in s.sites.items() %}{% set i = row.ingest %}
<tr><td>{{ site }}</td><td>{{ row.device }}</td><td>{{ i.patients }}</td><td>{{ i.inputs }}</td>
<td>{{ i.deidentified }}</td><td>{{ i.quarantined }}</td><td>{{ i.text_boxes_blanked }}</td>
<td>{{ i.store_total }} ({{ i.store_added.normal or 0 }} / {{ i.store_added.benign or 0 }} / {{ i.store_added.malignant or 0 }})</td></tr>
{% endfor %}</table>

<h2>Federated rounds</h2>
<div class="row">
{% if img.epsilon %}<img src="data:image/png;base64,{{ img.epsilon }}" alt="epsilon over rounds">{% endif %}
{% if img.loss %}<img src="data:image/png;base64,{{ img.loss }}" alt="validation loss over rounds">{% endif %}
</div>
<p class="note">Adapter update size: {{ s.federation.adapter_bytes }} bytes per site per round;
rounds completed {{ s.federation.completed_rounds }}/{{ s.federation.rounds }}
(status {{ s.federation.status }}).</p>

<h2>Releases (audited, signed, published)</h2>
{% for site, rel in s.releases.items() %}
<h3>{{ site }}</h3>
<p class="note">Bundle <code>{{ rel.bundle }}</code>; audit: <a href="{{ rel.audit_link }}">audit.html</a>.
{{ rel.n_released }} of {{ rel.n_generated }} generated images released; {{ rel.n_removed_memorization }} removed by the memorization filter, {{ rel.n_removed_phi }} by the PHI scan. Membership-inference AUC {{ fmt(rel.mia_auc) }}; {{ rel.fd_metric }} {{ fmt(rel.fd) }}.</p>
{% if img.grids[site] %}<img src="data:image/png;base64,{{ img.grids[site] }}" alt="synthetic images of {{ site }}">{% endif %}
{% endfor %}

<h2>Evidence: train on synthetic, test on real</h2>
{% if s.evidence %}
<table><tr><th>training data</th><th>AUC on held-out real patients</th></tr>
{% for key in ["auc_trtr", "auc_tstr", "auc_real_plus_synth"] %}
<tr><td>{{ key }}</td><td>{{ auc(s.evidence[key]) }}</td></tr>{% endfor %}
</table>
<p>Full report: <a href="evidence/report.html">evidence/report.html</a>.</p>
{% else %}<p>Not run.</p>{% endif %}
</body></html>
"""


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
    env = Environment(autoescape=select_autoescape(default=True))
    html = env.from_string(TEMPLATE).render(
        s=summary, img=img, fmt=_fmt, auc=_auc, stages=list(summary.get("timings", {}))
    )
    out = Path(run_dir) / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
