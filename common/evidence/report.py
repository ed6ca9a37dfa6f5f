"""Render evidence results: PNG plots and one self-contained HTML page (plots embedded)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import jinja2
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARM_NAMES = {
    "trtr": "real (TRTR)",
    "tstr": "synthetic (TSTR)",
    "real_plus_synth": "real + synthetic",
    "real_all": "all real",
    "real": "real",
    "real_device_aug": "real + device aug.",
    "synthetic_device_conditioned": "synthetic, device-conditioned",
    "synthetic_device_aug": "synthetic, device aug.",
}


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name in ("trtr", "tstr", "real_plus_synth"):
        r, s = results["roc"][name], results[f"auc_{name}"]
        ax.plot(r["fpr"], r["tpr"], label=f"{ARM_NAMES[name]}: AUC {s['auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    spec = results["specificity"]
    ax.axvline(1 - spec, color="grey", lw=0.8, ls="--")
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title=f"Held-out real patients (epsilon {results['epsilon']})",
    )
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_scaling(results: dict, path: Path) -> None:
    sc = results["scaling"]
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    ax.plot([p["n"] for p in sc["real"]], [p["auc"] for p in sc["real"]], "o-", label="real images")
    ax.plot(
        [p["n"] for p in sc["synthetic"]],
        [p["auc"] for p in sc["synthetic"]],
        "s-",
        label=f"synthetic images ({sc['release']})",
    )
    ax.set_xscale("log")
    ticks = sorted({p["n"] for p in sc["real"] + sc["synthetic"]})
    ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=8)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(
        xlabel="training images (log scale)",
        ylabel="AUC on held-out real patients",
        title="Scaling: synthetic vs real",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_cross_device(results: dict, path: Path) -> bool:
    cd = results["cross_device"]
    if "arms" not in cd:
        return False
    names = list(cd["arms"])
    held = [cd["arms"][n]["held_out"]["auc"] for n in names]
    err = [
        [h - cd["arms"][n]["held_out"]["auc_ci"][0] for n, h in zip(names, held)],
        [cd["arms"][n]["held_out"]["auc_ci"][1] - h for n, h in zip(names, held)],
    ]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    x = range(len(names))
    ax.bar(
        [i - 0.2 for i in x],
        held,
        width=0.4,
        yerr=err,
        capsize=3,
        label=f"test on {cd['held_out_device']} (unseen)",
    )
    if all("in_domain_auc" in cd["arms"][n] for n in names):
        ax.bar(
            [i + 0.2 for i in x],
            [cd["arms"][n]["in_domain_auc"] for n in names],
            width=0.4,
            label=f"test on {', '.join(cd['train_devices'])}",
        )
    ax.set_xticks(list(x), [ARM_NAMES.get(n, n) for n in names], rotation=15, fontsize=8)
    ax.set(ylabel="AUC", ylim=(0.4, 1.0), title="Cross-device generalisation")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def _eps_x(eps) -> float:
    return math.inf if eps == "inf" else float(eps)


def plot_privacy_utility(results: dict, path: Path) -> None:
    pts = sorted(results["privacy_utility"], key=lambda p: _eps_x(p["epsilon"]))
    finite = [_eps_x(p["epsilon"]) for p in pts if p["epsilon"] != "inf"]
    inf_x = max(finite) * 4 if finite else 10.0
    xs = [inf_x if p["epsilon"] == "inf" else _eps_x(p["epsilon"]) for p in pts]
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for key, marker in (("tstr", "s"), ("real_plus_synth", "o")):
        ys = [p[key]["auc"] for p in pts]
        err = [
            [y - p[key]["auc_ci"][0] for y, p in zip(ys, pts)],
            [p[key]["auc_ci"][1] - y for y, p in zip(ys, pts)],
        ]
        ax.errorbar(xs, ys, yerr=err, fmt=marker + "-", capsize=3, label=ARM_NAMES[key])
    ax.axhline(results["auc_real_all"]["auc"], color="grey", ls="--", label="all real")
    for x, p in zip(xs, pts):
        ax.annotate(
            p["release"],
            (x, p["tstr"]["auc"]),
            fontsize=7,
            xytext=(3, -10),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(
        xs, ["inf" if p["epsilon"] == "inf" else f"{_eps_x(p['epsilon']):g}" for p in pts]
    )
    ax.set(xlabel="epsilon (patient-level, log scale)", ylabel="AUC", title="Privacy-utility")
    ax.legend(fontsize=8)
    _save(fig, path)


TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>busgen-fed evidence report</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}.ok{color:#176317}.no{color:#a11}
.note{color:#555;font-size:0.9em}
</style></head><body>
<h1>What is the synthetic release worth?</h1>
{% if r.note %}<p style="background:#fff4d6;padding:0.5em"><b>Note:</b> {{ r.note }}</p>{% endif %}
<p>Benign-vs-malignant classifier, one recipe for every arm ({{ r.classifier.image_size }} px,
seeds {{ r.seeds|join(', ') }}), tested on <b>{{ r.data.test.images }} images of
{{ r.data.test.patients }} held-out real patients</b> (patient-disjoint from all training data).
Headline release: <b>{{ r.primary_release }}</b>, epsilon = {{ r.epsilon }} (patient-level).
Intervals: 95 % patient-level bootstrap of the seed-averaged metric.</p>
<h2>Headline</h2>
<table><tr><th>training data</th><th>images</th><th>AUC</th><th>95 % CI</th>
<th>sensitivity @ {{ (r.specificity*100)|round|int }} % specificity</th><th>95 % CI</th></tr>
{% for key in ['trtr','tstr','real_plus_synth','real_all'] %}{% set s = r['auc_' ~ key] %}
<tr><td>{{ names[key] }}</td><td>{{ s.n_images }}</td><td>{{ '%.3f'|format(s.auc) }}</td>
<td>{{ '%.3f'|format(s.auc_ci[0]) }}-{{ '%.3f'|format(s.auc_ci[1]) }}</td>
<td>{{ '%.3f'|format(s.sens_at_spec) }}</td>
<td>{{ '%.3f'|format(s.sens_at_spec_ci[0]) }}-{{ '%.3f'|format(s.sens_at_spec_ci[1]) }}</td></tr>
{% endfor %}</table>
<p>TSTR / TRTR AUC at the same image count: <b>{{ '%.3f'|format(r.tstr_over_trtr) }}</b>.</p>
<h3>Targets</h3><ul>{% for k, v in r.targets.items() %}
<li class="{{ 'ok' if v else 'no' }}">{{ k.replace('_', ' ') }}: {{ 'met' if v else 'not met' }}</li>{% endfor %}</ul>
<img src="data:image/png;base64,{{ img.roc }}" alt="ROC curves">
<h2>Scaling</h2>
<img src="data:image/png;base64,{{ img.scaling }}" alt="scaling curve">
<table><tr><th>synthetic images</th><th>AUC</th><th>worth (real images)</th></tr>
{% for p in r.scaling.synthetic %}<tr><td>{{ p.n }}</td><td>{{ '%.3f'|format(p.auc) }}</td>
<td>{{ p.equivalent_real|round|int if p.equivalent_real is not none else 'outside the real curve' }}</td></tr>{% endfor %}
</table><p class="note">Seeds used for the curve: {{ r.scaling.seeds|join(', ') }}.</p>
<h2>Cross-device</h2>
{% if r.cross_device.skipped %}<p>Not run: {{ r.cross_device.skipped }}.</p>{% else %}
<p>Trained without {{ r.cross_device.held_out_device }} (real devices: {{ r.cross_device.train_devices|join(', ') }}),
tested on held-out patients imaged with {{ r.cross_device.held_out_device }}.</p>
<table><tr><th>training data</th><th>images</th><th>AUC on {{ r.cross_device.held_out_device }}</th><th>95 % CI</th><th>in-domain AUC</th><th>drop</th></tr>
{% for k, a in r.cross_device.arms.items() %}<tr><td>{{ names[k] }}</td><td>{{ a.n_images }}</td>
<td>{{ '%.3f'|format(a.held_out.auc) }}</td><td>{{ '%.3f'|format(a.held_out.auc_ci[0]) }}-{{ '%.3f'|format(a.held_out.auc_ci[1]) }}</td>
<td>{{ '%.3f'|format(a.in_domain_auc) if a.in_domain_auc is defined else '' }}</td>
<td>{{ '%.3f'|format(a.auc_drop) if a.auc_drop is defined else '' }}</td></tr>{% endfor %}</table>
<img src="data:image/png;base64,{{ img.cross_device }}" alt="cross-device bars">{% endif %}
<h2>Privacy-utility</h2>
<table><tr><th>release</th><th>epsilon</th><th>synthetic images</th><th>TSTR AUC</th><th>real + synthetic AUC</th></tr>
{% for p in r.privacy_utility %}<tr><td>{{ p.release }}</td><td>{{ p.epsilon }}</td><td>{{ p.n_synthetic }}</td>
<td>{{ '%.3f'|format(p.tstr.auc) }} ({{ '%.3f'|format(p.tstr.auc_ci[0]) }}-{{ '%.3f'|format(p.tstr.auc_ci[1]) }})</td>
<td>{{ '%.3f'|format(p.real_plus_synth.auc) }} ({{ '%.3f'|format(p.real_plus_synth.auc_ci[0]) }}-{{ '%.3f'|format(p.real_plus_synth.auc_ci[1]) }})</td></tr>{% endfor %}
</table>
<img src="data:image/png;base64,{{ img.privacy_utility }}" alt="privacy-utility curve">
<p class="note">{{ r.trainings }} classifier trainings, {{ r.elapsed_s }} s. Real training data:
{{ r.data.real_train.images }} images of {{ r.data.real_train.patients }} patients.</p>
</body></html>
""")


def write_plots(results: dict, out_dir: Path) -> dict[str, Path]:
    """Draw every plot the results support into `out_dir`; returns name -> path."""
    out_dir = Path(out_dir)
    paths = {
        name: out_dir / f"{name}.png"
        for name in ("roc", "scaling", "cross_device", "privacy_utility")
    }
    plot_roc(results, paths["roc"])
    plot_scaling(results, paths["scaling"])
    if not plot_cross_device(results, paths["cross_device"]):
        del paths["cross_device"]
    plot_privacy_utility(results, paths["privacy_utility"])
    return paths


def render_html(results: dict, plots: dict[str, Path]) -> str:
    img = {name: base64.b64encode(Path(p).read_bytes()).decode() for name, p in plots.items()}
    return TEMPLATE.render(r=results, img=img, names=ARM_NAMES)
