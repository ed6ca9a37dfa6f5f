"""DP fine-tuning benchmark: what patient-level DP-SGD costs, and what it does to utility.

    .venv/bin/python bench/dp_bench.py [--size 64] [--batch 8] [--repeats 3] [--steps 30]

1. Step cost: one DP-SGD step (opacus hooks + per-patient regrouping + clipping + noise) against
   the same non-DP LoRA step on the SAME batch in the SAME process, round-robin, for attention-only
   and attention+conv adapters (the model of the cpu-demo profile at --size px). Peak memory is
   the peak RSS increase over the post-build RSS, one fresh subprocess per configuration.
2. Utility vs privacy: LoRA (attention) on phantom patients from a base briefly pretrained on
   other phantom patients; the same number of steps at epsilon = inf, 8, 4, 1 (PRV, patient
   level); denoising loss on the training patients and on held-out patients.

Writes bench/out/dp/result.json and bench/out/dp/dp_bench.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from client.train import (
    DPSettings,
    PatientDataset,
    collate_patients,
    denoising_loss,
    patch_opacus_conv_contiguous,
    regroup_grad_samples,
    train_on_tensors,
)
from common.config import LoraConfig, load_config
from common.model import build_unet, diffusion_loss, training_scheduler
from common.model.lora import inject_lora, lora_parameters
from common.privacy import calibrate_noise, default_delta, sample_rate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "dp"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def synthetic_batch(model_cfg, batch: int, seed: int = 0):
    """`batch` images from batch//2 patients (2 images each), as the collate returns them."""
    g = torch.Generator().manual_seed(seed)
    n, s = batch, model_cfg.image_size
    data = PatientDataset.from_tensors(
        torch.rand(n, s, s, generator=g) * 2 - 1,
        (torch.rand(n, s, s, generator=g) > 0.8).float(),
        torch.randint(0, 16, (n,), generator=g),
        [i // 2 for i in range(n)],
    )
    return data, collate_patients(data.patients, 6)


def make_steps(model_cfg, targets: str, batch: int):
    """(non-DP step, DP step) closures sharing one UNet, one batch and one scheduler."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    patch_opacus_conv_contiguous()
    torch.manual_seed(0)
    unet = inject_lora(build_unet(model_cfg), LoraConfig(rank=8, alpha=8.0, targets=targets))
    params = lora_parameters(unet)
    scheduler = training_scheduler(model_cfg)
    data, (images, masks, labels, group) = synthetic_batch(model_cfg, batch)
    gsm = GradSampleModule(unet, batch_first=True, loss_reduction="sum")
    plain = torch.optim.AdamW(params, lr=1e-4)
    private = DPOptimizer(
        torch.optim.AdamW(params, lr=1e-4),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        expected_batch_size=len(data),
        loss_reduction="mean",
    )
    gen = torch.Generator().manual_seed(1)

    def non_dp() -> None:
        gsm.disable_hooks()
        plain.zero_grad(set_to_none=True)
        diffusion_loss(unet, images, masks, labels, scheduler, generator=gen).backward()
        plain.step()
        gsm.enable_hooks()

    def dp() -> None:
        private.zero_grad(set_to_none=True)
        losses = diffusion_loss(
            gsm, images, masks, labels, scheduler, generator=gen, reduction="none"
        )
        losses.sum().backward()
        regroup_grad_samples(params, group, len(data))
        private.step()

    return non_dp, dp, sum(p.numel() for p in params)


def step_cost(model_cfg, batch: int, repeats: int) -> dict:
    out = {}
    for targets in ("attention", "attention+conv"):
        non_dp, dp, n_params = make_steps(model_cfg, targets, batch)
        non_dp(), dp()  # warm-up
        times = {"non_dp": [], "dp": []}
        for _ in range(repeats):  # round-robin, so load changes hit both alike
            for name, fn in (("non_dp", non_dp), ("dp", dp)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        out[targets] = {
            "lora_params": n_params,
            "s_per_step_non_dp": med["non_dp"],
            "s_per_step_dp": med["dp"],
            "ratio": med["dp"] / med["non_dp"],
            "raw": times,
        }
        print(
            f"{targets}: non-DP {med['non_dp']:.3f} s, DP {med['dp']:.3f} s, "
            f"ratio {med['dp'] / med['non_dp']:.2f}",
            flush=True,
        )
    return out


def memory_probe(args) -> None:
    """Child process: peak RSS increase of 3 steps of one configuration."""
    torch.set_num_threads(2)
    model_cfg = bench_model(args.size)
    non_dp, dp, _ = make_steps(model_cfg, args.probe_targets, args.batch)
    base = rss_mb()
    for _ in range(3):
        (dp if args.probe_mode == "dp" else non_dp)()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_delta_mb": peak - base}))


def peak_memory(args) -> dict:
    out = {}
    for targets in ("attention", "attention+conv"):
        for mode in ("non_dp", "dp"):
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--probe-targets",
                    targets,
                    "--probe-mode",
                    mode,
                    "--size",
                    str(args.size),
                    "--batch",
                    str(args.batch),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            out[f"{targets}/{mode}"] = json.loads(res.stdout.strip().splitlines()[-1])[
                "peak_delta_mb"
            ]
            print(f"peak memory {targets}/{mode}: +{out[f'{targets}/{mode}']:.0f} MB", flush=True)
    return out


def phantom_patients(model_cfg, site: str, patients: int, seed: int) -> PatientDataset:
    from simulation.phantom import simulate_store

    with tempfile.TemporaryDirectory() as tmp:
        store = simulate_store(
            Path(tmp) / "store",
            site,
            "device-a",
            patients,
            seed=seed,
            image_size=model_cfg.image_size,
        )
        return PatientDataset.from_store(store, store.records(), model_cfg)


def utility(model_cfg, args) -> dict:
    """Denoising loss after the same steps at several epsilons (same base, same data)."""
    torch.manual_seed(0)
    scheduler = training_scheduler(model_cfg)
    pre = phantom_patients(model_cfg, "bench-pretrain", args.pretrain_patients, 1)
    train = phantom_patients(model_cfg, "bench-site", args.patients, 2)
    held = phantom_patients(model_cfg, "bench-held", max(10, args.patients // 3), 3)
    base = build_unet(model_cfg)
    opt = torch.optim.AdamW(base.parameters(), lr=5e-4)
    images = torch.cat([p.images for p in pre.patients])
    masks = torch.cat([p.masks for p in pre.patients])
    labels = torch.cat([p.labels for p in pre.patients])
    gen = torch.Generator().manual_seed(0)
    base.train()
    for _ in range(args.pretrain_steps):  # a short non-private pretraining on OTHER patients
        idx = torch.randint(0, len(labels), (16,), generator=gen)
        opt.zero_grad()
        diffusion_loss(
            base, images[idx], masks[idx], labels[idx], scheduler, generator=gen
        ).backward()
        opt.step()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    q = sample_rate(args.expected_batch, len(train))
    delta = default_delta(len(train))
    rows = []
    for eps in (float("inf"), 8.0, 4.0, 1.0):
        unet = build_unet(model_cfg)
        unet.load_state_dict(state)
        inject_lora(unet, LoraConfig(rank=8, alpha=8.0, targets="attention"))
        sigma = None if eps == float("inf") else calibrate_noise(eps, delta, q, args.steps, "prv")
        stats = train_on_tensors(
            unet,
            train,
            scheduler,
            DPSettings(
                steps=args.steps,
                sample_rate=q,
                noise_multiplier=sigma,
                max_grad_norm=args.clip,
                lr=args.lr,
            ),
            sample_seed=0,
            noise_seed=1,
        )
        row = {
            "epsilon": eps,
            "noise_multiplier": sigma,
            "seconds": stats.seconds,
            "train_loss": denoising_loss(unet, train, scheduler, seed=5),
            "heldout_loss": denoising_loss(unet, held, scheduler, seed=5),
        }
        rows.append(row)
        print(
            f"eps={eps}: sigma={sigma}, train loss {row['train_loss']:.4f}, "
            f"held-out {row['heldout_loss']:.4f}",
            flush=True,
        )
    base.eval()
    return {
        "patients": len(train),
        "images": train.num_images,
        "sample_rate": q,
        "delta": delta,
        "steps": args.steps,
        "clip": args.clip,
        "lr": args.lr,
        "accountant": "prv",
        "unit": "patient",
        "pretrain_steps": args.pretrain_steps,
        "base_train_loss": denoising_loss(base, train, scheduler, seed=5),
        "base_heldout_loss": denoising_loss(base, held, scheduler, seed=5),
        "rows": rows,
    }


def bench_model(size: int):
    cfg = load_config("cpu-demo")
    return cfg.model.model_copy(update={"image_size": size})


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(result["step_cost"])
    x = range(len(names))
    a.bar(
        [i - 0.2 for i in x],
        [result["step_cost"][n]["s_per_step_non_dp"] for n in names],
        0.4,
        label="non-DP LoRA",
    )
    a.bar(
        [i + 0.2 for i in x],
        [result["step_cost"][n]["s_per_step_dp"] for n in names],
        0.4,
        label="DP-SGD (opacus hooks, per patient)",
    )
    for i, n in enumerate(names):
        a.text(
            i + 0.2,
            result["step_cost"][n]["s_per_step_dp"],
            f"{result['step_cost'][n]['ratio']:.2f}x",
            ha="center",
            va="bottom",
        )
    a.set_xticks(list(x), names)
    a.set_ylabel("seconds per step")
    a.set_title(f"step cost, batch {result['batch']} at {result['size']} px")
    a.legend()
    u = result["utility"]
    labels = ["inf" if r["epsilon"] == float("inf") else f"{r['epsilon']:g}" for r in u["rows"]]
    b.plot(labels, [r["train_loss"] for r in u["rows"]], "o-", label="training patients")
    b.plot(labels, [r["heldout_loss"] for r in u["rows"]], "s-", label="held-out patients")
    b.axhline(u["base_heldout_loss"], color="grey", ls=":", label="base, held-out")
    b.set_xlabel(f"epsilon (per patient, delta={u['delta']:.0e}, PRV)")
    b.set_ylabel("denoising loss")
    b.set_title(f"utility after {u['steps']} steps, {u['patients']} patients")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8, help="images per step (patients of 2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=30, help="DP steps for the utility sweep")
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--pretrain-patients", type=int, default=40)
    p.add_argument("--pretrain-steps", type=int, default=40)
    p.add_argument("--expected-batch", type=int, default=8)
    p.add_argument("--clip", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--utility-size", type=int, default=32)
    p.add_argument("--probe-targets", help=argparse.SUPPRESS)
    p.add_argument("--probe-mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.probe_targets:
        memory_probe(args)
        return
    torch.set_num_threads(2)
    started = time.time()
    result = {
        "size": args.size,
        "batch": args.batch,
        "repeats": args.repeats,
        "host": platform.node(),
        "torch": torch.__version__,
        "threads": 2,
        "note": "ratios compare configurations in the same process and run; absolute "
        "seconds depend on the (shared) CPU load",
    }
    result["step_cost"] = step_cost(bench_model(args.size), args.batch, args.repeats)
    result["peak_memory_mb"] = peak_memory(args)
    result["utility"] = utility(bench_model(args.utility_size), args)
    result["seconds"] = time.time() - started
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(result, OUT / "dp_bench.png")
    print(f"wrote {OUT / 'result.json'} and {OUT / 'dp_bench.png'} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
