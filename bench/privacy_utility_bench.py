"""Privacy-utility benchmark: the whole chain at several epsilons, federated and centralized.

    .venv/bin/python bench/privacy_utility_bench.py [--config cpu-demo] [--epsilons 8 4 1]
        [--set release.n_images=60 ...] [--out bench/out/privacy_utility]

For each epsilon, the demo's own stages run in their own run directory (fresh sites, so each
ledger starts empty): simulated hospitals with de-identifying ingest, the cached base,
federated rounds of patient-level DP-SGD adapters on Flower's Deployment Engine (TLS, node
auth), and a signed release at every site. At the profile's epsilon the same chain also runs
*centralized*: one site holding every hospital's patients trains alone with the same epsilon,
rounds and steps (a larger pool means a smaller sampling rate, hence less noise for the same
epsilon: that, and no averaging across non-IID sites, is what centralizing buys).

Then one evidence run (`common.evidence.run_evidence`) trains the classifier on every release
and reports TSTR and real+synthetic AUC on held-out real patients per release and epsilon.

Epsilon = infinity is not in the chain on purpose: a site refuses to train without DP (its
policy's `min_noise_multiplier`), so the no-privacy reference is the classifier trained on the
real images (TRTR), which the report shows beside every release. `bench/dp_bench.py` measures
the loss-level utility at epsilon infinity, 8, 4 and 1 without the site's refusal.

Everything resumes: a finished stage or run directory is not run again. Writes results.json,
report.html and plots (evidence/), and bench.json (wall time per stage) to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from common.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "privacy_utility"


def with_epsilon(cfg: Config, epsilon: float) -> Config:
    return cfg.model_copy(update={"dp": cfg.dp.model_copy(update={"target_epsilon": epsilon})})


def centralized(cfg: Config) -> Config:
    """One site ("pooled") holding every hospital's patients; it alone makes the quorum and
    releases as many images as all the sites together."""
    sites = cfg.simulation.sites
    pooled = sites[0].model_copy(
        update={"site_id": "pooled", "patients": sum(s.patients for s in sites)}
    )
    return cfg.model_copy(
        update={
            "simulation": cfg.simulation.model_copy(update={"sites": (pooled,)}),
            "federation": cfg.federation.model_copy(update={"min_train_sites": 1}),
            "release": cfg.release.model_copy(
                update={"n_images": cfg.release.n_images * len(sites)}
            ),
        }
    )


def pooled_sites_stage(run, hospitals) -> dict:
    """The centralized run's single site: every hospital's PACS export ingested into it."""
    from client.ingest import ingest
    from client.site_init import init_site
    from client.workdir import SiteDir
    from simulation.demo import pacs_export

    site = SiteDir(run.site_dir("pooled"))
    init_site("pooled", site.root)
    for spec in hospitals:
        pacs = pacs_export(run, spec)
        ingest(pacs / "DICOM", pacs / "labels.csv", site)
    return {"sites": {"pooled": {"hospitals": [s.site_id for s in hospitals]}}}


def run_chain(run_dir: Path, cfg: Config, sites_stage=None) -> tuple[list[Path], dict]:
    """Stages sites, base, federate and release of the demo; returns (release dirs, timings)."""
    from client.workdir import SiteDir
    from simulation.demo import (
        DemoRun,
        latest_global_adapter,
        run_stage,
        stage_base,
        stage_federate,
        stage_release,
        stage_sites,
    )

    run = DemoRun(run_dir, cfg)
    run_stage(run, "sites", lambda: (sites_stage or stage_sites)(run))
    base_dir = Path(run_stage(run, "base", lambda: stage_base(run))["base_dir"])
    run_stage(run, "federate", lambda: stage_federate(run, base_dir))
    run_stage(run, "release", lambda: stage_release(run, base_dir, latest_global_adapter(run)))
    releases = [SiteDir(run.site_dir(s.site_id)).release for s in cfg.simulation.sites]
    return releases, dict(run.timings)


def plot_curve(results: dict, out: Path) -> None:
    """TSTR and real+synthetic AUC against epsilon, TRTR as the no-privacy line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("federated", "o"), ("centralized", "s")):
        rows = sorted(
            (r for r in results["privacy_utility"] if r["release"].startswith(kind)),
            key=lambda r: r["epsilon"],
        )
        if not rows:
            continue
        eps = [r["epsilon"] for r in rows]
        for metric, style in (("tstr", "-"), ("real_plus_synth", "--")):
            auc = [r[metric]["auc"] for r in rows]
            ax.plot(eps, auc, style, marker=marker, label=f"{kind}: {metric.replace('_', ' ')}")
    ax.axhline(results["auc_trtr"]["auc"], color="k", lw=1, label="real only (TRTR, no DP)")
    ax.set_xscale("log")
    ticks = sorted({r["epsilon"] for r in results["privacy_utility"]})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("epsilon per patient (delta < 1/patients, PRV accountant)")
    ax.set_ylabel("AUC on held-out real patients")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "privacy_utility_curve.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 4.0, 1.0])
    ap.add_argument("--no-centralized", action="store_true", help="skip the centralized run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    synthetic, timings, stores = {}, {}, None
    for eps in args.epsilons:
        label = f"federated-eps{eps:g}"
        releases, timings[label] = run_chain(args.out / label, with_epsilon(cfg, eps))
        synthetic[label] = (releases, eps)
        if stores is None:
            from client.workdir import SiteDir

            stores = [
                SiteDir(args.out / label / "sites" / s.site_id).store for s in cfg.simulation.sites
            ]
    if not args.no_centralized:
        eps = cfg.dp.target_epsilon
        label = f"centralized-eps{eps:g}"
        releases, timings[label] = run_chain(
            args.out / label,
            centralized(cfg),
            sites_stage=lambda run: pooled_sites_stage(run, cfg.simulation.sites),
        )
        synthetic[label] = (releases, eps)

    from common.evidence import run_evidence

    t0 = time.perf_counter()
    results = run_evidence(
        args.out / "evidence",
        stores,
        stores,
        synthetic,
        cfg,
        note="privacy-utility sweep: every release was made by the full "
        "chain (DP adapters, release audit) in this run",
    )
    plot_curve(results, args.out)
    bench = {
        "config": args.config,
        "overrides": args.set,
        "epsilons": args.epsilons,
        "centralized": not args.no_centralized,
        "stage_seconds": timings,
        "evidence_s": round(time.perf_counter() - t0, 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu": platform.machine(),
        "privacy_utility": [
            {
                "release": r["release"],
                "epsilon": r["epsilon"],
                "n_synthetic": r["n_synthetic"],
                "auc_tstr": r["tstr"]["auc"],
                "auc_tstr_ci": r["tstr"]["auc_ci"],
                "auc_real_plus_synth": r["real_plus_synth"]["auc"],
            }
            for r in results["privacy_utility"]
        ],
        "auc_trtr": results["auc_trtr"]["auc"],
        "auc_trtr_ci": results["auc_trtr"]["auc_ci"],
    }
    (args.out / "bench.json").write_text(json.dumps(bench, indent=2))
    print(json.dumps(bench["privacy_utility"], indent=1))
    print("wrote", args.out / "bench.json", "and", args.out / "evidence" / "report.html")


if __name__ == "__main__":
    main()
