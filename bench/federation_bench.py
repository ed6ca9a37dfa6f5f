"""Federation benchmark: bytes per round vs the full model, wall time per round, site cold start.

Runs a real one-machine consortium (SuperLink with TLS and node auth, one SuperNode per site)
with the cpu-demo model architecture, then reads the coordinator's run state. All figures come
from the same run:
- bytes per round: the adapter ArrayRecord each way per site vs the base model's parameters
  (what a full-model FedAvg would send); target <= 2 %;
- wall time per round (train phase, including ClientApp process start);
- site cold start: seconds from `flwr-clientapp` process start to the start of training
  (Python + torch + training-stack imports, profile parsing, base hash check), reported by
  each site; plus the import time of the ClientApp module alone, measured here.

    .venv/bin/python bench/federation_bench.py [--rounds 2] [--sites 2] [--local-steps 2]
Writes bench/out/federation/results.json and federation.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "bench" / "out" / "federation"
SITES = [
    ("hospital-a", "device-a", 11),
    ("hospital-b", "device-b", 12),
    ("hospital-c", "device-c", 13),
]


def import_time(module: str) -> float:
    """Wall time of `import module` in a fresh interpreter (what every ClientApp pays)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sites", type=int, default=2, choices=(1, 2, 3))
    ap.add_argument("--local-steps", type=int, default=2)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "federation" / "work")
    args = ap.parse_args()

    import shutil

    import torch

    from client.approval import approve, installed_app_hash
    from client.site_init import init_site
    from client.workdir import SiteDir
    from common.config import load_config
    from common.model import build_unet, save_base
    from simulation.consortium import run_local_consortium
    from simulation.phantom import simulate_store

    torch.set_num_threads(2)
    shutil.rmtree(args.work, ignore_errors=True)
    cfg = load_config(
        "cpu-demo",
        [
            f"federation.rounds={args.rounds}",
            f"federation.min_train_sites={args.sites}",
            f"dp.local_steps={args.local_steps}",
            "dp.target_epsilon=4.0",
            "federation.validate=false",
            "federation.reply_timeout_s=600",
        ],
    )
    base = args.work / "base"
    torch.manual_seed(0)
    unet = build_unet(cfg.model)
    save_base(base, unet, cfg.model)
    model_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    site_dirs = []
    for sid, device, seed in SITES[: args.sites]:
        init_site(sid, args.work / "sites" / sid)
        approve(SiteDir(args.work / "sites" / sid), installed_app_hash(), note="benchmark")
        simulate_store(
            SiteDir(args.work / "sites" / sid).store,
            sid,
            device,
            args.patients,
            seed=seed,
            image_size=cfg.model.image_size,
        )
        site_dirs.append(args.work / "sites" / sid)

    t0 = time.monotonic()
    summary = run_local_consortium(
        args.work / "run",
        cfg,
        site_dirs,
        base,
        progress=lambda s: print(f"round {s['completed_rounds']}/{s['rounds']} {s['status']}"),
    )
    total_s = time.monotonic() - t0
    rounds = [h for h in summary["history"] if h["ok"]]
    cold = [m["cold-start-s"] for h in rounds for m in h["train_metrics"].values()]
    train = [m["train-s"] for h in rounds for m in h["train_metrics"].values()]
    adapter_bytes = summary["adapter_bytes"]
    results = {
        "device": "cpu (2 shared cores)",
        "model": "cpu-demo UNet",
        "sites": args.sites,
        "rounds": args.rounds,
        "local_steps": args.local_steps,
        "model_param_bytes": model_bytes,
        "adapter_bytes": adapter_bytes,
        "adapter_to_model_ratio": adapter_bytes / model_bytes,
        "bytes_per_round": [h["bytes_down"] + h["bytes_up"] for h in rounds],
        "full_model_bytes_per_round": [
            model_bytes * (h["bytes_down"] + h["bytes_up"]) // adapter_bytes for h in rounds
        ],
        "round_wall_s": [h["wall_s"] for h in rounds],
        "site_cold_start_s": cold,
        "site_train_s": train,
        "clientapp_module_import_s": import_time("client.client_app"),
        "training_stack_import_s": import_time("client.train"),
        "consortium_total_s": total_s,
        "max_epsilon": summary["max_epsilon"],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, OUT / "federation.png")
    print(json.dumps(results, indent=2))


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    ax[0].bar(
        ["adapter (sent)", "full model"],
        [r["adapter_bytes"] / 1e3, r["model_param_bytes"] / 1e3],
        color=["tab:green", "tab:gray"],
    )
    ax[0].set_ylabel("kB per site per direction")
    ax[0].set_title(f"payload: {100 * r['adapter_to_model_ratio']:.2f}% of the model")
    ax[1].bar([f"round {i + 1}" for i in range(len(r["round_wall_s"]))], r["round_wall_s"])
    ax[1].set_ylabel("seconds")
    ax[1].set_title("wall time per round (train phase)")
    n = len(r["site_cold_start_s"])
    ax[2].bar(range(n), r["site_cold_start_s"], label="cold start (process start -> training)")
    ax[2].bar(range(n), r["site_train_s"], bottom=r["site_cold_start_s"], label="DP training")
    ax[2].set_xlabel("site x round")
    ax[2].set_ylabel("seconds")
    ax[2].set_title("site ClientApp time")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
