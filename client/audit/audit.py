"""The release audit: runs the privacy checks (DP statement, memorization, membership inference,
PHI scan) and the quality section on a candidate synthetic set, and renders the report.

`run_audit` is data first: it returns the public audit as a JSON-ready dict (aggregates only:
no real image, no per-patient value), the public HTML rendered from that dict, the site-private
HTML with the closest synthetic/training pairs, and the mask of candidates that may be released.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch

from client.audit import plots
from client.audit.dp_statement import dp_section
from client.audit.membership import membership_attack
from client.audit.memorization import METRICS, audit_memorization
from client.audit.phi import phi_scan
from client.audit.quality import quality_summary
from common.config import ModelConfig
from common.files import atomic_write_bytes
from common.reports import render
from common.reports.figures import image_png_base64
from common.store import ImageRecord, Store

AUDIT_FORMAT = "busgen-audit/1"
PUBLIC_NOTICE = (
    "This public report contains aggregates only: no real image and no "
    "per-patient value. The images shown are synthetic images from this release."
)
PRIVATE_PAIRS = 24


@dataclass
class AuditResult:
    audit: dict  # public, JSON-ready
    html: str  # public page (self-contained)
    private_html: str  # SITE-PRIVATE page with real training images
    keep: np.ndarray  # bool [N]: candidates that pass memorization and text checks


def _png(image: np.ndarray) -> bytes:
    """The PNG the bundle writer will produce for this image (PIL, no ancillary chunks)."""
    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _to_unit(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float32) / 255.0


def _store_uint8(store: Store, records: Sequence[ImageRecord], size: int) -> np.ndarray:
    images, _ = store.load_arrays(list(records), size)
    return np.round((images + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def run_audit(
    synthetic: np.ndarray,
    rows: Sequence[dict],
    store: Store,
    train: Sequence[ImageRecord],
    holdout: Sequence[ImageRecord],
    model_cfg: ModelConfig,
    statement: Any,
    context: dict,
    unet: torch.nn.Module | None = None,
    seed: int = 0,
    mia_draws: int = 2,
) -> AuditResult:
    """Audit candidate images (uint8 [N,H,W] at `model_cfg.image_size`) and their metadata rows.

    `train`/`holdout`: the site's patient-disjoint split; `statement`: the PrivacyStatement (or
    dict, or None for a non-DP adapter); `context`: site_id, base_hash, adapter_hash;
    `unet`: the released model (base + adapter) for the membership attack (None skips it).
    """
    size = model_cfg.image_size
    synthetic = np.asarray(synthetic, np.uint8)
    if synthetic.ndim != 3 or synthetic.shape[1:] != (size, size):
        raise ValueError(f"synthetic images must be [N,{size},{size}] uint8, got {synthetic.shape}")
    train_u8 = _store_uint8(store, train, size)
    hold_u8 = _store_uint8(store, holdout, size)

    mem = audit_memorization(_to_unit(synthetic), _to_unit(train_u8), _to_unit(hold_u8), seed=seed)
    phi = phi_scan(list(synthetic), [_png(i) for i in synthetic], rows, model_cfg.devices)
    text_flag = np.zeros(len(synthetic), bool)
    text_flag[phi["flagged_images"]] = True
    keep = ~mem.flagged & ~text_flag

    dp = dp_section(statement)
    mia = (
        membership_attack(unet, model_cfg, store, train, holdout, draws=mia_draws, seed=seed)
        if unet is not None
        else {"skipped": "no model given"}
    )
    kept_rows = [r for r, k in zip(rows, keep) if k]
    quality = quality_summary(
        synthetic[keep], kept_rows, np.concatenate([train_u8, hold_u8]), seed=seed
    )

    patient = mia.get("patient_level") or {}
    audit = {
        "format": AUDIT_FORMAT,
        "public_notice": PUBLIC_NOTICE,
        "context": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "image_size": size,
            **context,
        },
        "summary": {
            "n_generated": int(len(synthetic)),
            "n_released": int(keep.sum()),
            "n_removed_memorization": int(mem.flagged.sum()),
            "n_removed_phi": int((text_flag & ~mem.flagged).sum()),
            "epsilon": dp.get("epsilon"),
            "delta": dp.get("delta"),
            "unit": dp.get("unit"),
            "accountant": dp.get("accountant"),
            "mia_auc": patient.get("auc"),
            "mia_tpr_at_1pct": (patient.get("tpr_at_fpr") or {}).get("0.01"),
            # Images with text are removed; files and rows must be clean as they stand.
            "phi_passed": not (phi["png_metadata_findings"] or phi["metadata_row_findings"]),
            "fd_metric": quality.get("fd_metric"),
            "fd": quality.get("fd"),
        },
        "dp": dp,
        "memorization": mem.public(),
        "mia": mia,
        "phi": phi,
        "quality": quality,
    }
    figures = _figures(audit, mem, synthetic[keep] if keep.any() else synthetic)
    html = render("audit.html.j2", a=audit, figures=figures)
    private = _private_html(mem, synthetic, train_u8, train, context, audit["context"]["created"])
    return AuditResult(audit=audit, html=html, private_html=private, keep=keep)


def _figures(audit: dict, mem, shown: np.ndarray) -> dict:
    figs: dict[str, Any] = {"memorization": []}
    for metric in ("l2", "ssim"):
        groups = {
            "synthetic": mem.synthetic.value(metric),
            "held-out real": mem.holdout.value(metric),
            "augmented training copy": mem.copies.value(metric),
        }
        figs["memorization"].append(
            plots.distance_histograms(groups, mem.thresholds[metric], metric)
        )
    mia = audit["mia"]
    if "patient_level" in mia:
        curves = {
            lvl.replace("_", " "): (mia[lvl]["roc"]["fpr"], mia[lvl]["roc"]["tpr"])
            for lvl in ("patient_level", "image_level")
        }
        figs["roc"] = plots.roc_loglog(curves, audit["dp"].get("epsilon"), audit["dp"].get("delta"))
    n = min(32, len(shown))
    figs["n_shown"] = n
    figs["grid"] = plots.image_grid(list(shown[:n]))
    return figs


def _private_html(
    mem,
    synthetic: np.ndarray,
    train_u8: np.ndarray,
    train: Sequence[ImageRecord],
    context: dict,
    created: str,
) -> str:
    order = np.argsort(mem.synthetic.l2, kind="stable")
    chosen = list(
        dict.fromkeys([*np.nonzero(mem.flagged)[0].tolist(), *order[:PRIVATE_PAIRS].tolist()])
    )
    pairs = []
    for i in chosen:
        j = int(mem.synthetic.l2_index[i])
        pairs.append(
            {
                "index": int(i),
                "synthetic": image_png_base64(synthetic[i]),
                "train": image_png_base64(train_u8[j]),
                "train_id": train[j].image_id,
                "l2": float(mem.synthetic.l2[i]),
                "ssim": float(mem.synthetic.ssim[i]),
                "cosine": float(mem.synthetic.cosine[i]),
                "flagged": bool(mem.flagged[i]),
            }
        )
    return render(
        "audit_private.html.j2",
        site_id=context.get("site_id", ""),
        created=created,
        thresholds=mem.thresholds,
        rule=mem.public()["rule"],
        pairs=pairs,
        metrics=METRICS,
    )


def write_private_report(private_dir: Path, html: str, stamp: str) -> Path:
    """Write the site-private review page under `SiteDir.private` (never part of a bundle)."""
    path = Path(private_dir) / "audit" / f"memorization-review-{stamp}.html"
    atomic_write_bytes(path, html.encode())
    return path
