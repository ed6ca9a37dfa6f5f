"""Membership inference against the released model (base + the site's adapter).

A diffusion model denoises its training images better than new ones, most visibly at
intermediate noise levels (Matsumoto et al. 2023). The attack adds the same seeded noise at
several fixed timesteps to each real image, asks the model to predict it, and scores the image
by its negative mean loss: low loss says "member". Members are the site's training patients;
non-members are the site's patient-disjoint holdout patients (`Store.split`), so both come from
the same scanner and population and only membership differs.

The privacy unit is the patient, so the headline attack scores a patient by the mean score of
their images; the image-level attack is reported too. Following Carlini et al. (2022) we report
TPR at 1 % and 0.1 % FPR next to AUC. With few non-member patients those low FPRs cannot be
resolved; the report says which FPR is the smallest measurable one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from common.config import ModelConfig
from common.evidence.metrics import auc, roc_points, tpr_at_fpr
from common.model import class_labels, training_scheduler
from common.store import ImageRecord, Store

REPORT_FPRS = (0.01, 0.001)
#: Fixed timesteps of the attack, as fractions of the schedule. Low and intermediate noise is
#: where a model that memorised an image denoises it visibly better than a new one (Matsumoto
#: et al. 2023; on our tiny test models the AUC peaks at t = 50-200 of 1000 and falls off
#: towards both t -> 0, where any image is easy, and t >= 500, where all are hard).
TIMESTEP_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3)


@torch.no_grad()
def loss_per_timestep(
    unet: torch.nn.Module,
    model_cfg: ModelConfig,
    images: np.ndarray,
    masks: np.ndarray,
    pathology: Sequence[str],
    device: Sequence[str | None],
    timesteps: Sequence[int],
    draws: int = 2,
    seed: int = 0,
    batch_size: int = 32,
) -> np.ndarray:
    """Denoising loss of each image at each fixed timestep: [N, len(timesteps)].

    `common.model.diffusion_loss` draws random timesteps (right for training); an attack needs
    them fixed, so this repeats its few lines (same inputs, target and scheduler) with `t` given.
    The noise of image i at (timestep j, draw d) is row i of one tensor seeded by (seed, j, d):
    it does not depend on the batch size or on the model, so two models (say a DP and a non-DP
    one) are scored on exactly the same noisy inputs, and the i-th member and the i-th
    non-member see the same noise.
    """
    scheduler = training_scheduler(model_cfg)
    dev = next(unet.parameters()).device
    was_training = unet.training
    unet.eval()
    x_all = torch.from_numpy(np.asarray(images, np.float32))[:, None]
    m_all = torch.from_numpy(np.asarray(masks, np.float32))[:, None]
    labels_all = class_labels(list(pathology), list(device), model_cfg, n=len(images))
    out = np.zeros((len(images), len(timesteps)), np.float64)
    for j, t_val in enumerate(timesteps):
        for d in range(draws):
            gen = torch.Generator().manual_seed(seed * 1000003 + j * 1009 + d)
            noise_all = torch.randn(x_all.shape, generator=gen)
            for start in range(0, len(images), batch_size):
                sl = slice(start, start + batch_size)
                x, m, noise = x_all[sl].to(dev), m_all[sl].to(dev), noise_all[sl].to(dev)
                t = torch.full((len(x),), int(t_val), dtype=torch.long, device=dev)
                noisy = scheduler.add_noise(x, noise, t)
                pred = unet(
                    torch.cat([noisy, m], dim=1), t, class_labels=labels_all[sl].to(dev)
                ).sample
                target = (
                    scheduler.get_velocity(x, noise, t)
                    if scheduler.config.prediction_type == "v_prediction"
                    else noise
                )
                loss = F.mse_loss(pred.float(), target.float(), reduction="none").mean(
                    dim=(1, 2, 3)
                )
                out[sl, j] += loss.cpu().numpy() / draws
    unet.train(was_training)
    return out


def _attack_summary(members: np.ndarray, nonmembers: np.ndarray) -> dict:
    """The attack as a classifier: higher score = "member"; its ROC curve and AUC."""
    labels = np.r_[np.ones(len(members), int), np.zeros(len(nonmembers), int)]
    scores = np.r_[members, nonmembers]
    fpr, tpr = roc_points(labels, scores)
    return {
        "n_members": int(len(members)),
        "n_nonmembers": int(len(nonmembers)),
        "auc": auc(labels, scores),
        "tpr_at_fpr": {f"{f:g}": tpr_at_fpr(fpr, tpr, f) for f in REPORT_FPRS},
        "min_measurable_fpr": 1.0 / max(1, len(nonmembers)),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }


def _by_patient(scores: np.ndarray, records: Sequence[ImageRecord]) -> np.ndarray:
    groups: dict[str, list[float]] = defaultdict(list)
    for s, rec in zip(scores, records):
        groups[rec.patient].append(float(s))
    return np.array([np.mean(groups[p]) for p in sorted(groups)])


def membership_attack(
    unet: torch.nn.Module,
    model_cfg: ModelConfig,
    store: Store,
    members: Sequence[ImageRecord],
    nonmembers: Sequence[ImageRecord],
    max_images: int = 400,
    draws: int = 2,
    seed: int = 0,
) -> dict:
    """Run the loss attack; returns the audit's MIA section (aggregates and the ROC only)."""
    if not members or not nonmembers:
        return {
            "skipped": "needs training and holdout patients "
            f"(have {len(members)} member and {len(nonmembers)} non-member images)"
        }
    rng = np.random.default_rng(seed)

    def pick(recs: Sequence[ImageRecord]) -> list[ImageRecord]:
        if len(recs) <= max_images:
            return list(recs)
        return [recs[i] for i in sorted(rng.choice(len(recs), max_images, replace=False))]

    members, nonmembers = pick(members), pick(nonmembers)
    timesteps = [max(1, int(f * model_cfg.num_train_timesteps)) for f in TIMESTEP_FRACTIONS]
    losses = []
    for recs in (members, nonmembers):
        images, masks = store.load_arrays(list(recs), model_cfg.image_size)
        devices = [r.device if r.device in model_cfg.devices else None for r in recs]
        losses.append(
            loss_per_timestep(
                unet,
                model_cfg,
                images,
                masks,
                [r.pathology for r in recs],
                devices,
                timesteps,
                draws=draws,
                seed=seed,
            )
        )
    score_m, score_n = -losses[0].mean(1), -losses[1].mean(1)
    per_t = {
        str(t): _attack_summary(-losses[0][:, j], -losses[1][:, j])["auc"]
        for j, t in enumerate(timesteps)
    }
    return {
        "attack": "loss-based (negative mean denoising loss over fixed timesteps, "
        f"{draws} seeded noise draws each)",
        "timesteps": timesteps,
        "nonmembers": "patient-disjoint holdout patients of the same site",
        "patient_level": _attack_summary(
            _by_patient(score_m, members), _by_patient(score_n, nonmembers)
        ),
        "image_level": _attack_summary(score_m, score_n),
        "auc_by_timestep": per_t,
    }
