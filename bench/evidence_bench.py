"""Evidence benchmark: the whole evidence protocol on the simulated consortium, timed.

    .venv/bin/python bench/evidence_bench.py [--config cpu-demo] [--run-dir RUN_DIR] [--full-grid]

With `--run-dir` (a finished `busgen-server demo` run) it evaluates that run's signed site
releases (pooled, epsilon from their manifests) against the run's site stores. Without it, no
generator is involved: the synthetic sets are *simulator reference sets* (freshly simulated
patients of every device, exported in the release layout), which measure what a perfect
generator would be worth and how long the protocol takes; the report says so at the top.

Writes bench/out/evidence/: results.json, report.html, the report's PNG plots, and bench.json
(wall time, trainings, seconds per training, threads) for the demo's CPU budget (~5 min on 2
cores for the cpu-demo profile).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from PIL import Image

from common.config import load_config
from common.evidence import run_evidence
from common.evidence.data import release_epsilon
from common.files import staged_directory
from common.store import Store
from simulation.phantom.sites import simulate_store

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "evidence"


def simulated_consortium(cfg, data_dir: Path) -> list[Path]:
    """The profile's sites as stores (cached in data_dir; simulate_store resumes)."""
    return [
        simulate_store(
            data_dir / "sites" / s.site_id,
            s.site_id,
            s.device,
            s.patients,
            s.malignant_rate,
            s.normal_rate,
            s.seed,
        ).root
        for s in cfg.simulation.sites
    ]


def reference_set(cfg, data_dir: Path, name: str, patients_per_device: int, seed: int) -> Path:
    """Freshly simulated patients of every device in the release folder layout."""
    out = data_dir / name
    if (out / "metadata.jsonl").exists():
        return out
    src = data_dir / f"{name}-store"
    for device in cfg.model.devices:
        simulate_store(src, f"{name}-{device}", device, patients_per_device, 0.4, 0.0, seed)
    store = Store(src)
    with staged_directory(out) as tmp:
        rows = []
        for i, rec in enumerate(store.records()):
            file_name = f"{i:05d}.png"
            Image.fromarray(store.load_image(rec)).save(tmp / file_name)
            rows.append(
                {
                    "file_name": file_name,
                    "pathology": rec.pathology,
                    "device": rec.device,
                    "birads": rec.birads,
                    "box": list(rec.boxes[0]) if rec.boxes else None,
                }
            )
        (tmp / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu-demo")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--run-dir", type=Path, help="A finished demo run to evaluate.")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp/busgen-evidence-bench"),
        help="Cache for the simulated consortium (no run dir).",
    )
    parser.add_argument("--full-grid", action="store_true")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)

    t0 = time.perf_counter()
    if args.run_dir:
        sites = sorted((args.run_dir / "sites").iterdir())
        stores = [s / "store" for s in sites]
        releases = [s / "release" for s in sites if (s / "release" / "manifest.json").exists()]
        eps = release_epsilon(releases[0])
        synthetic = {f"federated-eps{eps:g}" if eps else "federated-nodp": (releases, eps)}
        note = f"Synthetic images: the signed site releases of {args.run_dir}."
    else:
        stores = simulated_consortium(cfg, args.data_dir)
        per_device = max(10, cfg.release.n_images // 2)
        synthetic = {
            "simulator-reference": (
                reference_set(cfg, args.data_dir, "reference", per_device, 4242),
                None,
            )
        }
        note = (
            "No generator was run: the 'synthetic' set is freshly simulated patients from the "
            "phantom simulator (an upper bound: what a perfect generator would be worth), "
            "used to measure the protocol and its run time."
        )
    data_s = time.perf_counter() - t0

    t1, c1 = time.perf_counter(), time.process_time()
    results = run_evidence(
        OUT, stores, stores, synthetic, cfg, full_grid=args.full_grid or None, note=note
    )
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    bench = {
        "config": args.config,
        "overrides": args.overrides,
        "full_grid": results["full_grid"],
        "threads": cfg.evidence.threads,
        "cpu": platform.processor() or platform.machine(),
        "load_average_at_end": os.getloadavg(),
        "data_prep_s": round(data_s, 1),
        "evidence_wall_s": round(wall, 1),
        "evidence_cpu_s": round(cpu, 1),
        "trainings": results["trainings"],
        "s_per_training": round(wall / max(1, results["trainings"]), 2),
        "fits_cpu_demo_budget_300s": wall <= 300,
        "cpu_time_fits_budget_300s": cpu <= 300,
        "auc_trtr": results["auc_trtr"]["auc"],
        "auc_tstr": results["auc_tstr"]["auc"],
        "auc_real_plus_synth": results["auc_real_plus_synth"]["auc"],
        "tstr_over_trtr": results["tstr_over_trtr"],
        "targets": results["targets"],
    }
    (OUT / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    print(json.dumps(bench, indent=2))


if __name__ == "__main__":
    main()
