"""Render evidence results: PNG plots and one self-contained HTML page (plots embedded), from
the results dict that is also written as results.json."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import matplotlib.ticker

from common.reports import render
from common.reports.figures import figure, figure_png

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


def plot_roc(results: dict, path: Path) -> None:
    fig, ax = figure(4.6, 4.2)
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
    ax.legend(loc="lower right")
    path.write_bytes(figure_png(fig))


def plot_scaling(results: dict, path: Path) -> None:
    sc = results["scaling"]
    fig, ax = figure(5.2, 4.0)
    ax.plot([p["n"] for p in sc["real"]], [p["auc"] for p in sc["real"]], "o-", label="real images")
    ax.plot(
        [p["n"] for p in sc["synthetic"]],
        [p["auc"] for p in sc["synthetic"]],
        "s-",
        label=f"synthetic images ({sc['release']})",
    )
    ax.set_xscale("log")
    ticks = sorted({p["n"] for p in sc["real"] + sc["synthetic"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(
        xlabel="training images (log scale)",
        ylabel="AUC on held-out real patients",
        title="Scaling: synthetic vs real",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    path.write_bytes(figure_png(fig))


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
    fig, ax = figure(6.0, 4.0)
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
    ax.set_xticks(list(x), [ARM_NAMES.get(n, n) for n in names], rotation=15)
    ax.set(ylabel="AUC", ylim=(0.4, 1.0), title="Cross-device generalisation")
    ax.legend()
    path.write_bytes(figure_png(fig))
    return True


def _eps_x(eps) -> float:
    return math.inf if eps == "inf" else float(eps)


def plot_privacy_utility(results: dict, path: Path) -> None:
    pts = sorted(results["privacy_utility"], key=lambda p: _eps_x(p["epsilon"]))
    finite = [_eps_x(p["epsilon"]) for p in pts if p["epsilon"] != "inf"]
    inf_x = max(finite) * 4 if finite else 10.0
    xs = [inf_x if p["epsilon"] == "inf" else _eps_x(p["epsilon"]) for p in pts]
    fig, ax = figure(5.2, 4.0)
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
    ax.legend()
    path.write_bytes(figure_png(fig))


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
    return render("evidence.html.j2", r=results, img=img, names=ARM_NAMES)
