"""One site training job round: policy and ledger first, then DP-SGD, then the result.

`train_adapters` is what the Flower ClientApp and `busgen-site train` call. Order matters:
1. read the site policy, the training split of the store and the base model (no training);
2. plan the job (first round only: calibrate the noise multiplier so that ALL planned rounds
   together reach the target epsilon; later rounds reuse the recorded plan);
3. admit the block in the ledger: policy and projected epsilon checked, block recorded BEFORE
   training (PolicyError and an unchanged ledger if refused);
4. train, save the adapter atomically, note the block done, return.

What leaves the site with the result, and why each is safe:
- `adapter_state`: the DP-SGD output (post-processing of the DP mechanism);
- `statement` and `metrics`: functions of public DP parameters only (epsilon, delta, sigma, q,
  steps), never of the data;
- `num_examples`: COARSE, the image count rounded to a multiple of 10 (not DP: it reveals the
  size of the training set to within 10 images; the patient count is coarsened the same way);
- `local_metrics` (training losses, exact counts) are computed on private images and are NOT DP:
  they stay at the site (logs, local reports) and must never be sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import torch

from client import site_log
from client.ledger import JobPlan, PrivacyLedger
from client.train.data import PatientDataset
from client.train.dp import DPSettings, train_on_tensors
from client.workdir import SiteDir
from common.config import Config, config_from_dict
from common.errors import DataError, PolicyError
from common.files import atomic_write_bytes
from common.model.lora import adapter_state, inject_lora, load_adapter
from common.privacy import (
    PrivacyStatement,
    calibrate_noise,
    default_delta,
    epsilon,
    load_policy,
    public_patient_count,
    sample_rate,
)

log = logging.getLogger(__name__)

COARSE_UNIT = 10


@dataclass
class TrainResult:
    """The result of one round at one site. See the module docstring for what may leave."""

    adapter_state: dict[str, torch.Tensor]
    statement: PrivacyStatement
    num_examples: int
    metrics: dict
    local_metrics: dict = field(default_factory=dict)
    adapter_path: Path | None = None


def coarse_count(n: int) -> int:
    """Round to the nearest multiple of COARSE_UNIT (at least one unit): a coarse, non-DP count."""
    return max(COARSE_UNIT, int(round(n / COARSE_UNIT)) * COARSE_UNIT)


def plan_job(cfg: Config, job_id: str, patients: int) -> JobPlan:
    """DP parameters for a new job: noise calibrated to cfg.dp.target_epsilon over all rounds."""
    q = sample_rate(cfg.dp.expected_batch_patients, patients)
    delta = cfg.dp.delta if cfg.dp.delta is not None else default_delta(patients)
    steps = cfg.federation.rounds * cfg.dp.local_steps
    sigma = calibrate_noise(cfg.dp.target_epsilon, delta, q, steps, cfg.dp.accountant)
    return JobPlan(
        job_id=job_id,
        noise_multiplier=sigma,
        sample_rate=q,
        delta=delta,
        accountant=cfg.dp.accountant,
        rounds=cfg.federation.rounds,
        steps_per_round=cfg.dp.local_steps,
        max_grad_norm=cfg.dp.max_grad_norm,
        target_epsilon=cfg.dp.target_epsilon,
        noise_multiplicity=cfg.dp.noise_multiplicity,
        max_images_per_patient=cfg.dp.max_images_per_patient,
        patients_coarse=public_patient_count(patients),
    )


def _state_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].numpy().tobytes())
    return h.hexdigest()


def save_adapter(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write an adapter as safetensors, atomically (a crashed round never leaves half a file)."""
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in state.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


def train_adapters(
    site: SiteDir, cfg: Config, base_dir: Path, global_adapter: dict | None, round: int, job_id: str
) -> TrainResult:
    """Train this site's LoRA adapters for one round of job `job_id` with patient-level DP-SGD.

    Raises PolicyError (before any training, ledger unchanged) if the site policy or its
    remaining budget does not allow the round.
    """
    from common.model import compute_device, load_base, training_scheduler
    from common.store import Store

    if not cfg.dp.enabled:
        raise PolicyError("dp.enabled is false: a site only trains with differential privacy")
    policy = load_policy(site.policy)
    store = Store(site.store)
    records = store.split(cfg.data.holdout_fraction)[0]
    if not records:
        raise DataError(f"{site.store}: no training images (store empty or all held out)")
    unet, meta = load_base(base_dir, device=compute_device())
    model_cfg = meta["model_config"]
    dataset = PatientDataset.from_store(store, records, model_cfg)

    ledger = PrivacyLedger(site.ledger)
    plan = ledger.job_plan(job_id) or plan_job(cfg, job_id, len(dataset))
    ledger.admit_block(plan, round, plan.steps_per_round, policy, patients=len(dataset))
    log.info(
        "job %s round %d admitted: sigma=%.3f q=%.4f steps=%d",
        job_id,
        round,
        plan.noise_multiplier,
        plan.sample_rate,
        plan.steps_per_round,
    )

    inject_lora(unet, cfg.lora)
    if global_adapter:
        load_adapter(unet, global_adapter)
    settings = DPSettings(
        steps=plan.steps_per_round,
        sample_rate=plan.sample_rate,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        lr=cfg.dp.lr,
        noise_multiplicity=plan.noise_multiplicity,
        max_images_per_patient=plan.max_images_per_patient,
        cond_dropout=cfg.pretrain.cond_dropout,
        microbatch_rows=cfg.dp.microbatch_rows,
    )
    stats = train_on_tensors(
        unet,
        dataset,
        training_scheduler(model_cfg),
        settings,
        sample_seed=secrets.randbits(63),
        noise_seed=secrets.randbits(63),
    )
    state = adapter_state(unet)
    digest = _state_sha256(state)
    path = site.adapters / f"{job_id}-round{round:03d}.safetensors"
    save_adapter(path, state, {"job_id": job_id, "round": str(round), "base": meta["content_hash"]})
    ledger.record_done(job_id, round, stats.steps, digest)

    job_history = ledger.history(job_id)
    statement = PrivacyStatement(
        epsilon=epsilon(job_history, plan.delta, plan.accountant),
        delta=plan.delta,
        accountant=plan.accountant,
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        max_grad_norm=plan.max_grad_norm,
        steps=sum(b[2] for b in job_history),
        rounds=len(job_history),
        job_id=job_id,
        noise_multiplicity=plan.noise_multiplicity,
        max_images_per_patient=plan.max_images_per_patient,
        patients_coarse=plan.patients_coarse,
        history=tuple(job_history),
    )
    site_log.record_training(site, job_id, round, statement)
    metrics = {
        "epsilon": statement.epsilon,
        "delta": plan.delta,
        "site_epsilon": ledger.total_epsilon(plan.accountant),
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "steps": statement.steps,
    }
    losses = [x for x in stats.losses if x == x]
    local = {
        "patients": len(dataset),
        "images": dataset.num_images,
        "loss": sum(losses) / len(losses) if losses else float("nan"),
        "empty_steps": stats.empty_steps,
        "seconds": stats.seconds,
    }
    return TrainResult(
        adapter_state=state,
        statement=statement,
        num_examples=coarse_count(dataset.num_images),
        metrics=metrics,
        local_metrics=local,
        adapter_path=path,
    )


def standalone_config(cfg: Config, target_epsilon: float | None, steps: int | None) -> Config:
    """The config of a one-round local job (for `busgen-site train`).

    The command-line values are validated like profile values (a NaN or infinite epsilon is
    refused), which copying the config with updated fields would skip.
    """
    data = cfg.to_dict()
    options = {"target_epsilon": target_epsilon, "local_steps": steps}
    data["dp"].update({k: v for k, v in options.items() if v is not None})
    data["federation"]["rounds"] = 1
    return config_from_dict(data, source="busgen-site train --epsilon/--steps")
