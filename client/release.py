"""A site's synthetic release: generate -> audit -> drop flagged images -> dataset card -> sign
-> a `release` event (bundle and manifest hash) in the site log.

`make_release` is the library entry point (`busgen-site release` and the demo call it). Only the
bundle leaves the site; the memorization review with real training images is written under
`SiteDir.private`. The class mix comes from `release.pathology_mix` (public) and the devices from
the model's device list restricted to those in this site's store; lesion boxes come from a DP
box prior (the base model's, fit on the coordinator's pretraining data, unless another is given;
flat if there is none), so no label count or box geometry is copied from the site's data into
the release.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from client.audit import run_audit, write_private_report
from client.site_log import record_release
from client.workdir import SiteDir
from common import __version__
from common.config import Config, ModelConfig
from common.errors import ConfigError, DataError
from common.files import sha256_file
from common.model.box_prior import BoxPrior
from common.store import PATHOLOGIES, Store

log = logging.getLogger(__name__)

LICENCE = "CC BY 4.0"


def conditions(n: int, mix: tuple[float, ...], devices: list[str]) -> tuple[list[str], list[str]]:
    """Pathology and device for each of n images: counts by largest remainder, devices cycled."""
    if len(mix) != len(PATHOLOGIES) or min(mix) < 0 or sum(mix) <= 0:
        raise ConfigError(
            f"release.pathology_mix must be {len(PATHOLOGIES)} non-negative shares "
            f"for {PATHOLOGIES}, got {list(mix)}"
        )
    share = np.asarray(mix, float) / sum(mix) * n
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    pathology = [p for p, c in zip(PATHOLOGIES, counts) for _ in range(c)]
    device = [devices[i % len(devices)] for i in range(n)]
    return pathology, device


@dataclass
class SiteModel:
    """What a site samples from: the verified base with its adapter, and the lesion-box prior."""

    unet: torch.nn.Module
    model_cfg: ModelConfig
    base_hash: str
    adapter_hash: str | None
    box_prior: BoxPrior | None


def load_model(
    base_dir: Path,
    adapter_path: Path | None,
    cfg: Config,
    expected_hash: str | None = None,
    box_prior_path: Path | None = None,
) -> SiteModel:
    """The base (its content hash verified, and `expected_hash` if given) with the adapter
    loaded, on the site's GPU if any. The box prior is `box_prior_path`, else the DP prior
    stored in the base (fit on the coordinator's pretraining data: nothing of this site's),
    else None (a flat prior)."""
    from safetensors.torch import load_file

    from common.model import compute_device, load_base
    from common.model.export import base_box_prior
    from common.model.lora import inject_lora, load_adapter

    unet, meta = load_base(base_dir, expected_hash, device=compute_device())
    adapter_hash = None
    if adapter_path is not None:
        adapter_path = Path(adapter_path)
        if not adapter_path.exists():
            raise DataError(f"{adapter_path}: adapter file not found")
        inject_lora(unet, cfg.lora)
        load_adapter(unet, load_file(str(adapter_path)))
        adapter_hash = sha256_file(adapter_path)
    unet.eval()
    prior = BoxPrior.load(box_prior_path) if box_prior_path else base_box_prior(meta)
    return SiteModel(unet, meta["model_config"], meta["content_hash"], adapter_hash, prior)


def dataset_card(
    site_id: str, audit: dict, base_hash: str, adapter_hash: str | None, model_cfg, n: int
) -> str:
    """The bundle's README.md (a Hugging Face dataset card)."""
    s, dp, mem = audit["summary"], audit["dp"], audit["memorization"]
    mia = audit["mia"].get("patient_level")
    tpr = "; ".join(f"FPR {float(f):.1%}: TPR <= {b:.2%}" for f, b in dp["tpr_bound"].items())
    mia_line = (
        f"AUC {mia['auc']:.3f}, TPR at 1 % FPR {mia['tpr_at_fpr']['0.01']:.1%} "
        f"({mia['n_members']} member / {mia['n_nonmembers']} non-member patients)"
        if mia
        else f"not run ({audit['mia'].get('skipped')})"
    )
    fd = f"{s['fd']:.4g}" if s.get("fd") is not None else "n/a"
    return f"""---
license: cc-by-4.0
task_categories: [image-classification, object-detection]
tags: [synthetic, breast-ultrasound, differential-privacy]
pretty_name: busgen-fed synthetic release from {site_id}
---
# Synthetic breast-ultrasound images from {site_id}

{n} synthetic B-mode images ({model_cfg.image_size} x {model_cfg.image_size} px, 8-bit grey) with
pathology (normal / benign / malignant), device and lesion box, made by a diffusion model
fine-tuned at {site_id} with differentially private LoRA adapters (busgen-fed {__version__}).

## Intended use
Method development, teaching, benchmarking and data augmentation research.
**NOT for diagnosis or any clinical decision.** The images are synthetic; they depict no real
patient and may contain anatomical errors. BI-RADS is not generated (null).

## Generator
- base model content hash: `{base_hash}`
- adapter SHA-256: `{adapter_hash or "none (base model only)"}`
- sampler: DPM-Solver++, {audit["context"].get("sampling_steps", "?")} steps

## Privacy statement
{dp["claim"]}.{
        ""
        if not dp.get("dp")
        else f''' Noise multiplier {dp['noise_multiplier']:.4g}, sampling rate
{dp['sample_rate']:.4g}, clipping norm {dp['max_grad_norm']}, {dp['steps']} steps over {dp['rounds']} round(s).'''
    }
Unit of privacy: the patient (all images of a patient together). The images are post-processing
of the DP-trained model and carry the same guarantee. Implied ceiling on any membership attack: {
        tpr
    }.

## Audit summary (details in audit.json / audit.html)
- generated {s["n_generated"]}, released {s["n_released"]}; removed as possible copies of
  training images: {s["n_removed_memorization"]}; removed for text: {s["n_removed_phi"]}
- memorization rule: {mem["rule"]}; copy-detection rate on augmented training images
  {mem["augmented_copies"]["caught_rate"]["any"]:.0%}, held-out false-flag rate
  {mem["holdout_false_flag_rate"]["any"]:.0%}
- membership inference (loss attack, patient level): {mia_line}
- PHI scan: {"passed" if s["phi_passed"] else "FINDINGS, see audit"}
- quality: {s.get("fd_metric") or "FD"} against the site's real images: {fd}

## Licence
{LICENCE}. Verify the signature before use: `busgen-release verify DIR --trust TRUST_FILE`.
"""


def make_release(
    site: SiteDir,
    cfg: Config,
    base_dir: Path,
    adapter_path: Path | None,
    n: int,
    out_dir: Path,
    seed: int = 0,
    box_prior_path: Path | None = None,
    statement=None,
    progress=None,
) -> dict:
    """Generate n candidates, audit them, drop flagged ones and write a signed bundle.

    `statement`: the PrivacyStatement to report; by default the site's ledger total (None and
    no ledger = the adapter carries no DP guarantee, and the report says so).
    Returns a summary dict (paths, counts and the audit summary).
    """
    from client.ledger import PrivacyLedger
    from common.model import generate
    from common.release.bundle import MANIFEST, write_bundle
    from common.release.signing import load_signing_key

    torch.manual_seed(seed)
    site_id = site.site_id()
    out_dir = Path(out_dir)
    replace = out_dir.resolve() == site.release
    if out_dir.exists() and not replace:  # refuse before minutes of generation and audit
        raise DataError(f"{out_dir}: already exists; releases are immutable (choose a new --out)")
    store = Store(site.store)
    train, holdout = store.split(cfg.data.holdout_fraction)
    if not train:
        raise DataError(f"{site.store}: no training images; nothing to audit a release against")
    model = load_model(base_dir, adapter_path, cfg, box_prior_path=box_prior_path)
    model_cfg, base_hash, adapter_hash = model.model_cfg, model.base_hash, model.adapter_hash
    devices = [d for d in model_cfg.devices if d in {r.device for r in store.records()}]
    if not devices:
        raise DataError(
            f"{site.store}: none of the store's devices are in the model's device "
            f"list {list(model_cfg.devices)}"
        )
    if statement is None and site.ledger.exists():
        statement = PrivacyLedger(site.ledger).statement(cfg.dp.accountant)

    pathology, device = conditions(n, cfg.release.pathology_mix, devices)
    log.info("%s: generating %d candidate images", site_id, n)
    batch = generate(
        model.unet,
        model_cfg,
        cfg.sampling,
        n,
        pathology,
        device,
        seed=seed,
        box_prior=model.box_prior,
        progress=progress,
    )
    rows = [
        {"pathology": p, "birads": None, "device": d, "box": list(b[0]) if b else None}
        for p, d, b in zip(batch.pathology, batch.device, batch.boxes)
    ]
    context = {
        "site_id": site_id,
        "base_hash": base_hash,
        "adapter_hash": adapter_hash or "",
        "sampling_steps": cfg.sampling.steps,
        "box_prior_epsilon": batch.meta.get("box_prior_epsilon"),
    }
    log.info("%s: auditing", site_id)
    result = run_audit(
        batch.images,
        rows,
        store,
        train,
        holdout,
        model_cfg,
        statement,
        context,
        unet=model.unet,
        seed=seed,
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    private = write_private_report(site.private, result.private_html, stamp)

    keep = np.nonzero(result.keep)[0]
    if len(keep) == 0:
        raise DataError(
            f"{site_id}: every candidate image was flagged by the audit "
            f"(see {private}); nothing can be released"
        )
    images = [batch.images[i] for i in keep]
    kept_rows = [rows[i] for i in keep]
    card = dataset_card(site_id, result.audit, base_hash, adapter_hash, model_cfg, len(images))
    key = load_signing_key(site.signing_key, site.signing_passphrase)
    extra = {
        "site_id": site_id,
        "generator_hash": base_hash,
        "adapter_hash": adapter_hash,
        "busgen_version": __version__,
        "audit_format": result.audit["format"],
        "epsilon": result.audit["summary"]["epsilon"],
        "delta": result.audit["summary"]["delta"],
    }
    write_bundle(
        out_dir, images, kept_rows, card, result.audit, result.html, extra, key, replace=replace
    )
    # The signature covers the manifest, so its hash in the site log names exactly what left.
    manifest_sha256 = sha256_file(out_dir / MANIFEST)
    record_release(site, out_dir, manifest_sha256, n_images=len(images))
    log.info("%s: released %d of %d images to %s", site_id, len(images), n, out_dir)
    return {
        "site_id": site_id,
        "bundle": str(out_dir),
        "private_review": str(private),
        "manifest_sha256": manifest_sha256,
        **result.audit["summary"],
    }
