"""The DP statement of a release and the ceiling it puts on any membership attack.

(epsilon, delta)-DP per patient means that for every membership test an attacker can run on
the released model or its images, TPR <= e^epsilon * FPR + delta (Kairouz et al. 2015). We print
that ceiling at the low false-positive rates that matter (1 % and 0.1 %), so the reader sees
what the guarantee promises in attack terms, next to what the audit's own attack achieved.
Synthetic images are post-processing of the DP-trained adapter, so they inherit the guarantee.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

REQUIRED = (
    "epsilon",
    "delta",
    "accountant",
    "unit",
    "noise_multiplier",
    "sample_rate",
    "max_grad_norm",
    "steps",
    "rounds",
)
REPORT_FPRS = (0.01, 0.001)


def tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """Largest TPR any membership attack can reach at `fpr` under (epsilon, delta)-DP."""
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(epsilon) * fpr + delta)


def statement_dict(statement: Any) -> dict:
    """A PrivacyStatement (or a dict with the same fields) as a plain, checked dict."""
    if statement is None:
        return {"dp": False}
    if dataclasses.is_dataclass(statement):
        data = (
            statement.to_dict() if hasattr(statement, "to_dict") else dataclasses.asdict(statement)
        )
    else:
        data = dict(statement)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"privacy statement is missing {', '.join(missing)}")
    return data


def dp_section(statement: Any) -> dict:
    """The audit's DP section: the statement's parameters plus the implied TPR ceilings.

    `statement=None` records that the adapter was trained without DP (no guarantee at all).
    """
    data = statement_dict(statement)
    if data.get("dp") is False:
        return {
            "dp": False,
            "claim": "no differential-privacy guarantee (trained without DP)",
            "tpr_bound": {f"{f:g}": 1.0 for f in REPORT_FPRS},
        }
    eps, delta = float(data["epsilon"]), float(data["delta"])
    section = {k: data[k] for k in REQUIRED}
    section.update(
        {
            "dp": True,
            "scope": data.get("scope", "job"),
            "claim": (
                f"({_fmt_eps(eps)}, {delta:.1e})-DP per {data['unit']}, "
                f"{data['accountant']} accountant"
            ),
            "tpr_bound": {f"{f:g}": tpr_bound(eps, delta, f) for f in REPORT_FPRS},
            "tpr_bound_formula": "TPR <= exp(epsilon) * FPR + delta",
        }
    )
    for key in ("noise_multiplicity", "max_images_per_patient", "patients_coarse", "history"):
        if key in data:
            section[key] = data[key]
    return section


def _fmt_eps(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:.2f}"
