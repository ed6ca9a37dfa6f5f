"""Validation loss of a global adapter on the site's held-out patients (Flower's evaluate message).

The held-out split is patient-level (`Store.split`) and never trained on. The loss is computed
on private images, so it is not differentially private: only a rounded mean (3 significant
digits) and a coarse image count leave the site, and the coordinator may switch validation off
(`federation.validate: false`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from client.train import PatientDataset, coarse_count
from client.train.dp import denoising_loss
from client.workdir import SiteDir
from common.config import Config
from common.errors import DataError
from common.model import compute_device, load_base, training_scheduler
from common.model.lora import inject_lora, load_adapter
from common.store import Store


def round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def validate_adapters(
    site: SiteDir, cfg: Config, base_dir: Path, adapter: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Mean denoising loss (fixed seed) of base + `adapter` on held-out patients."""
    store = Store(site.store)
    held_out = store.split(cfg.data.holdout_fraction)[1]
    if not held_out:
        raise DataError(f"{site.store}: no held-out patients to validate on")
    unet, meta = load_base(base_dir, device=compute_device())
    inject_lora(unet, cfg.lora)
    load_adapter(unet, adapter)
    model_cfg = meta["model_config"]
    dataset = PatientDataset.from_store(store, held_out, model_cfg)
    loss = denoising_loss(unet, dataset, training_scheduler(model_cfg), seed=cfg.seed, repeats=2)
    return {"val_loss": round_sig(loss), "num_examples": coarse_count(dataset.num_images)}
