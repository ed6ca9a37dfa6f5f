"""GPU check and benchmark of the gpu-128 profile, for a machine with a CUDA GPU.

    python bench/gpu_bench.py [--out bench/out/gpu] [--patients 120] [--pretrain-steps 40]

CI has no GPU, so this is how the GPU code paths of the coordinator and of a site are verified,
with the profile's own model (44M parameters, 128 px) and the same functions the platform calls:

1. `common.model.pretrain` with bf16 autocast, EMA and checkpoints, stopped half-way and resumed
   (the exact-resume path on CUDA); the finished base is loaded back through its content hash;
2. pretraining throughput at the profile's batch size, bf16 autocast vs fp32, alternated in one
   process;
3. a site's patient-level DP-SGD on LoRA adapters (`client.train.dp.train_on_tensors`, noise
   calibrated by the PRV accountant to the profile's epsilon) against the same steps without
   DP, at two expected batch sizes: seconds per step and peak GPU memory;
4. DPM-Solver++ sampling with classifier-free guidance at 128 px: bf16 autocast vs fp32, batched
   CFG vs two passes.

Without a GPU it runs on the CPU (a smoke test of the script: pass --set overrides that shrink
the model). Writes gpu.json, gpu.png and samples.png to --out. The images come from a base trained for a
few dozen steps: they show that the path works, not what the model can do.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from client.train.data import PatientDataset
from client.train.dp import DPSettings, train_on_tensors
from client.train.job import plan_job
from common.config import load_config
from common.model import (
    build_unet,
    compute_device,
    diffusion_loss,
    drop_conditions,
    generate,
    load_base,
    pretrain,
    training_scheduler,
)
from common.model.lora import inject_lora
from common.model.pretrain import load_training_data
from simulation.phantom import simulate_multi_device_store

OUT = Path(__file__).resolve().parent / "out" / "gpu"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def pretrain_and_resume(store, cfg, work: Path, steps: int) -> dict:
    """Pretrain half the steps, stop, resume to the end; load the base back (hash verified)."""
    pc = cfg.pretrain.model_copy(
        update={
            "steps": steps,
            "checkpoint_every": max(1, steps // 4),
            "warmup_steps": max(1, steps // 10),
        }
    )
    cfg = cfg.model_copy(update={"pretrain": pc})
    first = pretrain(store, cfg, work / "base", progress=False, stop_at_step=steps // 2)
    second = pretrain(store, cfg, work / "base", progress=False)
    unet, meta = load_base(work / "base", second.content_hash, device=compute_device())
    return {
        "steps": steps,
        "stopped_at": first.step,
        "finished": second.finished,
        "resumed_from": first.step,
        "content_hash": second.content_hash,
        "images_per_s_first_session": first.images_per_s,
        "images_per_s_resumed_session": second.images_per_s,
        "loss_first": first.losses[:3],
        "loss_last": second.losses[-3:],
        "loaded_on": str(next(unet.parameters()).device),
    }


def training_throughput(store, cfg, steps: int, repeats: int) -> dict:
    """Images/s of one optimizer step at the profile's batch: bf16 autocast vs fp32, alternated."""
    records, images, masks, labels = load_training_data(store, cfg)
    torch.manual_seed(0)
    dev = compute_device()
    unet = build_unet(cfg.model).to(dev).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    sched = training_scheduler(cfg.model)
    b = cfg.pretrain.batch_size
    idx = torch.randint(0, len(records), (b,))
    x, m, y = images[idx].to(dev), masks[idx].to(dev), labels[idx].to(dev)
    gen = torch.Generator(dev).manual_seed(0)

    def run(amp: bool) -> None:
        for _ in range(steps):
            yy, mm = drop_conditions(y, m, 0.1, gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = diffusion_loss(unet, x, mm, yy, sched, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    for amp in (True, False):  # warm-up: kernels, cuDNN autotuning
        run(amp)
    seconds = {"bf16": [], "fp32": []}
    for _ in range(repeats):
        for name, amp in (("bf16", True), ("fp32", False)):
            seconds[name].append(timed(lambda amp=amp: run(amp)))
    ips = {k: b * steps / min(v) for k, v in seconds.items()}
    return {
        "batch": b,
        "steps": steps,
        "repeats": repeats,
        "images_per_s": ips,
        "bf16_speedup": ips["bf16"] / ips["fp32"],
        "parameters": sum(p.numel() for p in unet.parameters()),
    }


def dp_steps(base_dir: Path, store, cfg, expected_patients: int, steps: int) -> dict:
    """DP-SGD vs non-DP LoRA steps on the same data; peak memory of each."""
    result = {"expected_batch_patients": expected_patients}
    records = store.split(cfg.data.holdout_fraction)[0]
    dataset = PatientDataset.from_store(store, records, cfg.model)
    dp_cfg = cfg.dp.model_copy(update={"expected_batch_patients": expected_patients})
    plan = plan_job(cfg.model_copy(update={"dp": dp_cfg}), "gpu-bench", len(dataset))
    for mode in ("dp", "no_dp"):
        unet, meta = load_base(base_dir, device=compute_device())  # fresh adapters per mode
        inject_lora(unet, cfg.lora)
        settings = DPSettings(
            steps=steps,
            sample_rate=plan.sample_rate,
            noise_multiplier=plan.noise_multiplier if mode == "dp" else None,
            max_grad_norm=plan.max_grad_norm,
            lr=cfg.dp.lr,
            noise_multiplicity=plan.noise_multiplicity,
            max_images_per_patient=plan.max_images_per_patient,
            microbatch_rows=cfg.dp.microbatch_rows,
        )
        reset_peak_memory()
        try:
            stats = train_on_tensors(
                unet,
                dataset,
                training_scheduler(meta["model_config"]),
                settings,
                sample_seed=1,
                noise_seed=2,
            )
        except torch.OutOfMemoryError as exc:
            result[mode] = {"out_of_memory": str(exc).splitlines()[0]}
            continue
        result[mode] = {
            "seconds_per_step": stats.seconds / stats.steps,
            "patients_per_step": float(np.mean(stats.patients_sampled)),
            "rows_per_step_bound": int(
                max(stats.patients_sampled) * plan.max_images_per_patient * plan.noise_multiplicity
            ),
            "peak_gpu_gib": peak_memory_gib(),
            "loss_finite": all(np.isfinite(v) for v in stats.losses if v == v),
        }
        result.update(
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            delta=plan.delta,
            patients=len(dataset),
            accountant=plan.accountant,
            target_epsilon=plan.target_epsilon,
            rounds=plan.rounds,
            steps_per_round=plan.steps_per_round,
        )
        del unet
    if "seconds_per_step" in result.get("dp", {}) and "seconds_per_step" in result["no_dp"]:
        result["dp_over_no_dp_time"] = (
            result["dp"]["seconds_per_step"] / result["no_dp"]["seconds_per_step"]
        )
    return result


def sampling_speed(base_dir: Path, cfg, n: int) -> tuple[dict, np.ndarray]:
    """Images/s of `generate`: bf16 autocast vs fp32, batched CFG vs two passes."""
    unet, meta = load_base(base_dir, device=compute_device())
    paths = [("benign", "malignant", "normal")[i % 3] for i in range(n)]
    variants = {
        "bf16_batched_cfg": (True, True),
        "fp32_batched_cfg": (False, True),
        "bf16_two_passes": (True, False),
    }
    generate(unet, meta["model_config"], cfg.sampling, 4, paths[:4], None)  # warm-up
    ips, batch = {}, None
    for name, (amp, batched) in variants.items():
        sampling = cfg.sampling.model_copy(update={"mixed_precision": amp})
        sync()
        start = time.perf_counter()
        out = generate(unet, meta["model_config"], sampling, n, paths, None, batched_cfg=batched)
        sync()
        ips[name] = n / (time.perf_counter() - start)
        batch = batch or out
    return (
        {
            "n": n,
            "steps": cfg.sampling.steps,
            "guidance_scale": cfg.sampling.guidance_scale,
            "batch_size": cfg.sampling.batch_size,
            "images_per_s": ips,
            "bf16_over_fp32": ips["bf16_batched_cfg"] / ips["fp32_batched_cfg"],
            "batched_over_two_passes": ips["bf16_batched_cfg"] / ips["bf16_two_passes"],
        },
        batch.images[:24],
    )


def plot(results: dict, samples: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    tp = results["training"]["images_per_s"]
    axes[0].bar(list(tp), list(tp.values()), color=["tab:blue", "tab:gray"])
    axes[0].set_title(f"pretraining, batch {results['training']['batch']}: images/s")
    labels, values = [], []
    for run in results["dp"]:
        for mode in ("dp", "no_dp"):
            if "seconds_per_step" in run.get(mode, {}):
                labels.append(f"{mode}\n{run['expected_batch_patients']} pts")
                values.append(run[mode]["seconds_per_step"])
    axes[1].bar(labels, values, color="tab:orange")
    axes[1].set_title("LoRA step (s), patient-level DP-SGD vs none")
    sp = results["sampling"]["images_per_s"]
    axes[2].bar([k.replace("_", " ", 1) for k in sp], list(sp.values()), color="tab:green")
    axes[2].set_title(f"sampling, {results['sampling']['steps']} steps CFG: images/s")
    fig.suptitle(f"gpu-128 on {results['gpu']}")
    fig.tight_layout()
    fig.savefig(out / "gpu.png", dpi=110)
    rows = [np.concatenate(list(samples[i : i + 8]), axis=1) for i in range(0, len(samples), 8)]
    from PIL import Image

    Image.fromarray(np.concatenate(rows, axis=0)).save(out / "samples.png")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="gpu-128")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--patients", type=int, default=120, help="simulated patients (3 devices)")
    ap.add_argument("--pretrain-steps", type=int, default=40)
    ap.add_argument("--throughput-steps", type=int, default=10)
    ap.add_argument("--dp-steps", type=int, default=3)
    ap.add_argument("--sample-n", type=int, default=128)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override (a CPU smoke run shrinks the model with these)",
    )
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.machine()})"
    )
    results = {
        "config": args.config,
        "overrides": args.set,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        store = simulate_multi_device_store(
            work / "store", cfg.simulation.pretrain_devices, args.patients, seed=cfg.seed
        )
        results["simulate_s"] = time.perf_counter() - t0
        print("simulated", len(store.records()), "images", flush=True)
        results["pretrain"] = pretrain_and_resume(store, cfg, work, args.pretrain_steps)
        print("pretrain", results["pretrain"], flush=True)
        results["training"] = training_throughput(store, cfg, args.throughput_steps, 2)
        print("training", results["training"], flush=True)
        results["dp"] = [
            dp_steps(work / "base", store, cfg, b, args.dp_steps)
            for b in (16, cfg.dp.expected_batch_patients)
        ]
        print("dp", results["dp"], flush=True)
        results["sampling"], samples = sampling_speed(work / "base", cfg, args.sample_n)
        print("sampling", results["sampling"], flush=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2, default=str))
    plot(results, samples, args.out)
    print("wrote", args.out / "gpu.json")


if __name__ == "__main__":
    main()
