"""Generator benchmark: sampling speed, training speed, and quality after a fixed CPU budget.

    .venv/bin/python bench/generator_bench.py            # a few minutes on 2 cores
    .venv/bin/python bench/generator_bench.py --budget 1800 --n-eval 200   # longer, better model

Writes bench/out/generator/{generator.json, speed.png, loss.png, samples.png}:
1. sampling images/s at 64 px and 25 DPM-Solver++ steps with guidance, batched CFG (one forward
   on [cond; uncond]) vs two passes, measured alternately in the same process;
2. training steps/s of the cpu-demo UNet at batch 16;
3. quality of a base trained for --budget seconds on simulated phantom data: FD_EffLite0,
   KID, precision/recall, density/coverage (and the same in a random-CNN space) against the
   patient-level holdout, next to the real-vs-real split-half baseline;
4. a sample grid: one row per (pathology, device), requested boxes drawn in.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.config import load_config
from common.model import build_unet, generate, load_base, pretrain
from common.model.export import base_box_prior
from common.quality import efflite0_extractor, quality_report, random_cnn_extractor
from common.store import Store
from simulation.phantom import simulate_multi_device_store

OUT = Path(__file__).resolve().parent / "out" / "generator"


def sampling_speed(cfg, repeats: int, n: int) -> dict:
    torch.manual_seed(0)
    unet = build_unet(cfg.model).eval()
    sc = cfg.sampling.model_copy(update={"steps": 25, "batch_size": n})
    warm_up = sc.model_copy(update={"steps": 5})
    generate(unet, cfg.model, warm_up, n, "benign", cfg.model.devices[0])
    times = {"batched": [], "two_pass": []}
    for r in range(repeats):
        for mode in ("batched", "two_pass"):
            t = time.perf_counter()
            generate(
                unet,
                cfg.model,
                sc,
                n,
                "benign",
                cfg.model.devices[0],
                seed=r,
                batched_cfg=mode == "batched",
            )
            times[mode].append(n / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "image_size": cfg.model.image_size,
        "steps": 25,
        "guidance_scale": sc.guidance_scale,
        "batch": n,
        "repeats": repeats,
        "images_per_s": med,
        "all_runs": times,
        "speedup_batched_vs_two_pass": med["batched"] / med["two_pass"],
    }


def training_speed(cfg, store: Store, steps: int) -> dict:
    """Steps/s of the full pretraining loop (EMA, clipping, balanced sampling) at batch 16."""
    with tempfile.TemporaryDirectory() as tmp:
        pc = cfg.pretrain.model_copy(update={"steps": steps + 2, "checkpoint_every": 10_000})
        c = cfg.model_copy(update={"pretrain": pc})
        t0 = {}

        def on_step(step, _loss):
            if step == 2:
                t0["t"] = time.perf_counter()  # skip the first steps (allocation, warm-up)

        r = pretrain(store, c, tmp, progress=False, on_step=on_step)
        dt = time.perf_counter() - t0["t"]
    return {
        "batch_size": cfg.pretrain.batch_size,
        "steps_timed": steps,
        "steps_per_s": steps / dt,
        "images_per_s": steps * cfg.pretrain.batch_size / dt,
        "parameters": sum(p.numel() for p in build_unet(cfg.model).parameters()),
        "note": f"{r.step} steps incl. 2 warm-up; the base directory written at the end is included",
    }


def sample_grid(unet, meta, cfg, path: Path, per_row: int = 6) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    model_cfg = meta["model_config"]
    prior = base_box_prior(meta)
    rows = [(p, d) for p in ("normal", "benign", "malignant") for d in model_cfg.devices]
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 1.3, len(rows) * 1.35))
    for i, (p, d) in enumerate(rows):
        batch = generate(
            unet, model_cfg, cfg.sampling, per_row, p, d, seed=100 + i, box_prior=prior
        )
        for j in range(per_row):
            ax = axes[i, j]
            ax.imshow(batch.images[j], cmap="gray", vmin=0, vmax=255)
            for x0, y0, x1, y1 in batch.boxes[j]:
                ax.add_patch(
                    Rectangle(
                        (x0 - 0.5, y0 - 0.5),
                        x1 - x0,
                        y1 - y0,
                        fill=False,
                        edgecolor="yellow",
                        linewidth=0.8,
                    )
                )
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{p}\n{d}", fontsize=7)
    fig.suptitle(
        f"samples (DPM-Solver++ {cfg.sampling.steps} steps, CFG {cfg.sampling.guidance_scale}); "
        "yellow: requested box",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def quality_after_budget(
    cfg,
    store: Store,
    budget_s: float,
    steps_per_s: float,
    n_eval: int,
    work: Path,
    efflite_size: int,
) -> tuple[dict, list[float], object, dict]:
    """Train for about `budget_s` seconds: the step count comes from the measured training speed,
    so the LR schedule (warm-up + cosine) runs to its end within the budget."""
    steps = max(20, int(budget_s * steps_per_s))
    warmup = min(cfg.pretrain.warmup_steps, steps // 10)
    pc = cfg.pretrain.model_copy(update={"steps": steps, "warmup_steps": warmup})
    cfg = cfg.model_copy(update={"pretrain": pc})
    out = work / "base"
    t = time.perf_counter()
    result = pretrain(store, cfg, out, progress=True)
    train_s = time.perf_counter() - t
    unet, meta = load_base(out)
    _, holdout = store.split(cfg.data.holdout_fraction)
    holdout = holdout[: 2 * n_eval]
    real = (
        ((store.load_arrays(holdout, cfg.model.image_size)[0] + 1) * 127.5).round().astype(np.uint8)
    )
    paths = [r.pathology for r in holdout[:n_eval]]
    devices = [r.device for r in holdout[:n_eval]]
    t = time.perf_counter()
    fake = generate(
        unet,
        meta["model_config"],
        cfg.sampling,
        len(paths),
        paths,
        devices,
        seed=1,
        box_prior=base_box_prior(meta),
    ).images
    gen_s = time.perf_counter() - t
    extractors = [efflite0_extractor(input_size=efflite_size), random_cnn_extractor(0)]
    report = quality_report(real, fake, extractors=extractors, n_boot=100)
    info = {
        "train_budget_s": budget_s,
        "train_s_measured": train_s,
        "steps": result.step,
        "n_train_images": result.n_images,
        "n_real_holdout": len(real),
        "n_generated": len(fake),
        "generation_s": gen_s,
        "efflite_input_size": efflite_size,
        "note": "conditions of the generated set copy the holdout's pathology/device mix",
    }
    return {**info, "metrics": report}, result.losses, unet, meta


def plot(results: dict, losses: list[float]) -> None:
    import matplotlib.pyplot as plt

    s = results["sampling"]["images_per_s"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(
        ["batched CFG", "two passes"], [s["batched"], s["two_pass"]], color=["tab:blue", "tab:gray"]
    )
    ax.set_ylabel("images / s (64 px, 25 steps)")
    ax.set_title(f"speed-up {results['sampling']['speedup_batched_vs_two_pass']:.2f}x", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "speed.png", dpi=110)
    plt.close(fig)
    if losses:
        fig, ax = plt.subplots(figsize=(5, 3))
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(losses, alpha=0.3, label="loss")
        ax.plot(np.arange(len(smooth)) + k - 1, smooth, label=f"mean of {k}")
        ax.set_xlabel("step"), ax.set_ylabel("noise-prediction MSE"), ax.legend()
        fig.tight_layout()
        fig.savefig(OUT / "loss.png", dpi=110)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--budget", type=float, default=150.0, help="training seconds for the quality run"
    )
    ap.add_argument(
        "--n-eval", type=int, default=48, help="generated images for the quality metrics"
    )
    ap.add_argument("--patients", type=int, default=240, help="simulated pretraining patients")
    ap.add_argument("--repeats", type=int, default=2, help="alternating repeats of the speed test")
    ap.add_argument("--n-speed", type=int, default=8, help="images per sampling-speed run")
    ap.add_argument("--efflite-size", type=int, default=128, help="EfficientNet-Lite0 input size")
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads; use 1 when the machine is shared (2 threads oversubscribe)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    cfg = load_config("cpu-demo", ["pretrain.checkpoint_every=100000"])
    results = {
        "machine": {
            "cpu_threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "profile": "cpu-demo",
        "prediction_type": cfg.model.prediction_type,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = simulate_multi_device_store(
            work / "store",
            cfg.simulation.pretrain_devices,
            args.patients,
            seed=0,
            image_size=128,
            progress=True,
        )
        results["sampling"] = sampling_speed(cfg, args.repeats, n=args.n_speed)
        print("sampling", json.dumps(results["sampling"]["images_per_s"]))
        results["training"] = training_speed(cfg, store, steps=8)
        print("training", results["training"]["steps_per_s"], "steps/s")
        quality, losses, unet, meta = quality_after_budget(
            cfg,
            store,
            args.budget,
            results["training"]["steps_per_s"],
            args.n_eval,
            work,
            args.efflite_size,
        )
        results["quality"] = quality
        sample_grid(unet, meta, cfg, OUT / "samples.png")
    (OUT / "generator.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    plot(results, losses)
    q = results["quality"]["metrics"]["EffLite0"]
    print(
        f"FD_EffLite0 generated {q['generated']['FD_EffLite0']['value']:.2f} "
        f"vs real-vs-real {q['real_vs_real']['FD_EffLite0']['value']:.2f}; wrote {OUT}"
    )


if __name__ == "__main__":
    main()
