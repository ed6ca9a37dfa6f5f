"""Centralised pretraining of the base model on a training store (the coordinator's job).

What BUSGen's trainer lacks and this one does: EMA weights, seeding, resume from the last
checkpoint (model, EMA, optimizer, LR schedule, step and every RNG state, so a resumed run
repeats the uninterrupted loss curve exactly on CPU), a batch size above 1, class-balanced
batches, mixed precision on GPU, and a verified output directory.

Output directory:
    BASE_DIR/ (save_base layout: EMA weights, config, busgen_model.json with the DP box prior,
               busgen_hash.json)
    BASE_DIR/checkpoints/state.pt   latest training state (replaced atomically)
    BASE_DIR/train_log.jsonl        one line per logged step: step, loss, lr, images/s
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup

from common.config import Config
from common.errors import ConfigError, DataError
from common.files import atomic_writer
from common.model.box_prior import BoxPrior
from common.model.checkpoint import compute_device, save_base
from common.model.unet import (
    build_unet,
    class_labels,
    diffusion_loss,
    drop_conditions,
    training_scheduler,
)
from common.store import ImageRecord, Store

log = logging.getLogger(__name__)


class EMA:
    """Exponential moving average of the weights, with the usual short warm-up of the decay."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        """Load a checkpoint's averages onto the device the model trains on."""
        self.decay = state["decay"]
        self.shadow = {k: v.to(self.shadow[k].device) for k, v in state["shadow"].items()}


@dataclass
class PretrainResult:
    out_dir: Path
    step: int
    finished: bool
    content_hash: str | None
    losses: list[float] = field(default_factory=list)
    images_per_s: float = 0.0
    n_images: int = 0


def _fingerprint(cfg: Config, records: list[ImageRecord]) -> str:
    """What must not change between a run and its resume: model, training recipe, seed, data."""
    pre = cfg.pretrain.model_dump()
    pre.pop("checkpoint_every")
    text = json.dumps(
        {
            "model": cfg.model.model_dump(),
            "pretrain": pre,
            "seed": cfg.seed,
            "data": [r.image_id for r in records],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _save_state(path: Path, state: dict) -> None:
    """Streamed to an atomic writer: the state can be large, so it is never held as bytes."""
    with atomic_writer(path) as fh:
        torch.save(state, fh)


def load_training_data(
    store: Store, cfg: Config
) -> tuple[list[ImageRecord], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training side of the store (patient-level split) as tensors: images, masks, labels.

    Devices the model does not know are trained as the null device, so imported data without
    scanner labels still teaches pathology.
    """
    records, _ = store.split(cfg.data.holdout_fraction)
    if not records:
        raise DataError(f"{store.root}: no training images (store empty, or everything is holdout)")
    images, masks = store.load_arrays(records, cfg.model.image_size)
    known = set(cfg.model.devices)
    unknown = sorted({r.device for r in records if r.device not in known})
    if unknown:
        log.warning(
            "devices %s are not in model.devices; training them as the null device", unknown
        )
    labels = class_labels(
        [r.pathology for r in records],
        [r.device if r.device in known else None for r in records],
        cfg.model,
    )
    return records, torch.from_numpy(images), torch.from_numpy(masks), labels


def _batch_weights(records: list[ImageRecord], balance: bool) -> torch.Tensor:
    if not balance:
        return torch.ones(len(records), dtype=torch.float64)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.pathology] = counts.get(r.pathology, 0) + 1
    return torch.tensor([1.0 / counts[r.pathology] for r in records], dtype=torch.float64)


def pretrain(
    store: Store | Path,
    cfg: Config,
    out_dir: str | Path,
    *,
    progress: bool = True,
    stop_at_step: int | None = None,
    time_budget_s: float | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> PretrainResult:
    """Train (or resume training) the base model and write it to `out_dir` when finished.

    `stop_at_step` / `time_budget_s` end the session early with a checkpoint, so a long run can
    be split into sessions; calling again resumes. The base directory is written only when all
    `cfg.pretrain.steps` are done.
    """
    store = store if isinstance(store, Store) else Store(Path(store))
    out = Path(out_dir)
    pc = cfg.pretrain
    if pc.steps < 1 or pc.batch_size < 1 or pc.checkpoint_every < 1:
        raise ConfigError(
            "pretrain.steps, pretrain.batch_size and pretrain.checkpoint_every must be >= 1"
        )
    records, images, masks, labels = load_training_data(store, cfg)
    weights = _batch_weights(records, pc.balance_classes)
    fingerprint = _fingerprint(cfg, records)
    dev = compute_device()

    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg.model).to(dev)
    unet.train()
    scheduler = training_scheduler(cfg.model)
    opt = torch.optim.AdamW(unet.parameters(), lr=pc.lr, weight_decay=pc.weight_decay)
    lr_sched = get_cosine_schedule_with_warmup(opt, pc.warmup_steps, pc.steps)
    ema = EMA(unet, pc.ema_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, losses = 0, []

    state_path = out / "checkpoints" / "state.pt"
    if state_path.exists():
        # on the CPU: RNG states must stay CPU byte tensors; the rest is copied to `dev` below
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise ConfigError(
                f"{state_path}: this checkpoint was made with a different config, seed "
                "or training data; use a new --out directory or the same settings"
            )
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if dev.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, losses = state["step"], state["losses"]
        log.info("resuming from %s at step %d", state_path, step)

    def checkpoint() -> None:
        _save_state(
            state_path,
            {
                "fingerprint": fingerprint,
                "step": step,
                "losses": losses,
                "model": unet.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "lr_scheduler": lr_sched.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if dev.type == "cuda" else None,
            },
        )

    amp = pc.mixed_precision and dev.type == "cuda"
    end = min(pc.steps, stop_at_step) if stop_at_step is not None else pc.steps
    t0, done_images = time.perf_counter(), 0
    bar = _progress_bar(progress)
    task = (
        bar.add_task("pretrain", total=pc.steps, completed=step, loss=float("nan"), ips=0.0)
        if bar
        else None
    )
    with bar or _Nothing(), open(_ensure(out) / "train_log.jsonl", "a") as train_log:
        while step < end:
            idx = torch.multinomial(weights, pc.batch_size, replacement=True, generator=gen)
            x, m, y = images[idx], masks[idx], labels[idx]
            if pc.hflip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1), x.flip(-1), x)
                m = torch.where(flip.view(-1, 1, 1), m.flip(-1), m)
            y, m = drop_conditions(y, m, pc.cond_dropout, gen)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = diffusion_loss(unet, x.to(dev), m.to(dev), y.to(dev), scheduler, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), pc.grad_clip)
            opt.step()
            lr_sched.step()
            step += 1
            ema.update(unet, step)
            loss_value = loss.item()
            losses.append(loss_value)
            done_images += len(idx)
            ips = done_images / max(time.perf_counter() - t0, 1e-9)
            if bar:
                bar.update(task, completed=step, loss=loss_value, ips=ips)
            if on_step:
                on_step(step, loss_value)
            if step % 10 == 0 or step == end:
                train_log.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": round(loss_value, 6),
                            "lr": lr_sched.get_last_lr()[0],
                            "images_per_s": round(ips, 3),
                        }
                    )
                    + "\n"
                )
                train_log.flush()
            over_budget = time_budget_s is not None and time.perf_counter() - t0 > time_budget_s
            if step % pc.checkpoint_every == 0 or step == end or over_budget:
                checkpoint()
            if over_budget:
                break
    ips = done_images / max(time.perf_counter() - t0, 1e-9)
    if step < pc.steps:
        return PretrainResult(out, step, False, None, losses, ips, len(records))

    ema_unet = build_unet(cfg.model)
    ema_unet.load_state_dict({k: v.to(torch.float32) for k, v in ema.shadow.items()})
    prior = BoxPrior.fit(
        records,
        cfg.model.devices,
        cfg.sampling.box_prior_epsilon,
        grid=cfg.sampling.box_prior_grid,
        boxes_per_patient=cfg.sampling.box_prior_boxes_per_patient,
    )
    digest = save_base(
        out,
        ema_unet,
        cfg.model,
        {
            "training": {
                "steps": step,
                "final_loss_mean_last_50": float(np.mean(losses[-50:])),
                "prediction_type": cfg.model.prediction_type,
                "ema_decay": pc.ema_decay,
                "seed": cfg.seed,
                "n_images": len(records),
                "n_patients": len({r.patient for r in records}),
                "pretrain": pc.model_dump(),
            },
            "box_prior": prior.to_json(),
            "sampling": cfg.sampling.model_dump(),
        },
    )
    log.info("base model written to %s (content hash %s)", out, digest)
    return PretrainResult(out, step, True, digest, losses, ips, len(records))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[ips]:.1f} img/s"),
        TimeRemainingColumn(),
    )
