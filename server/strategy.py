"""Adapter FedAvg with a real quorum: pure functions, no Flower, no torch.

Flower's own FedAvg treats `min_*_nodes` as a sampling size, not as a quorum, and a round with
no usable replies keeps the old weights while the run still ends "completed". Here a round
either aggregates at least `min_replies` valid adapter updates or raises `QuorumError`; the
ServerApp decides whether to retry the round or stop the run, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.errors import FederationError


class QuorumError(FederationError):
    """A round ended with fewer valid replies than the configured minimum."""

    def __init__(self, message: str, rejected: list[Rejected] | None = None) -> None:
        super().__init__(message)
        self.rejected = list(rejected or [])


@dataclass(frozen=True)
class Update:
    """One site's reply to a train message."""

    node_id: int
    site_id: str
    arrays: dict[str, np.ndarray]
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A reply (or missing reply) that does not count towards the quorum, and why."""

    node_id: int
    site_id: str
    reason: str


def validate_update(update: Update, reference: dict[str, np.ndarray]) -> str | None:
    """Return why `update` cannot be aggregated, or None if it can.

    An update must carry exactly the adapter keys of the global adapter (so a site can never
    slip base-model weights or extra tensors into the average), with the same shapes, finite
    values and a positive example count.
    """
    keys, expected = set(update.arrays), set(reference)
    if keys != expected:
        extra, missing = sorted(keys - expected), sorted(expected - keys)
        return f"adapter keys differ from the global adapter (extra {extra[:3]}, missing {missing[:3]})"
    for key, ref in reference.items():
        arr = update.arrays[key]
        if arr.shape != ref.shape:
            return f"tensor {key}: shape {arr.shape}, expected {ref.shape}"
        if not np.all(np.isfinite(arr)):
            return f"tensor {key}: contains NaN or infinity"
    if update.num_examples <= 0:
        return f"num-examples must be positive, got {update.num_examples}"
    return None


def check_quorum(
    server_round: int, accepted: list[Update], rejected: list[Rejected], min_replies: int
) -> None:
    """Raise QuorumError naming every missing or rejected site when the quorum is not met."""
    if len(accepted) >= min_replies:
        return
    why = "; ".join(f"{r.site_id}: {r.reason}" for r in rejected) or "no site replied"
    raise QuorumError(
        f"round {server_round}: {len(accepted)} valid adapter update(s), "
        f"quorum is {min_replies} ({why})",
        rejected,
    )


def fedavg(updates: list[Update]) -> dict[str, np.ndarray]:
    """Average adapter tensors weighted by each site's (coarse) example count."""
    if not updates:
        raise ValueError("fedavg needs at least one update")
    total = float(sum(u.num_examples for u in updates))
    keys = updates[0].arrays.keys()
    out = {}
    for key in keys:
        acc = np.zeros(updates[0].arrays[key].shape, dtype=np.float64)
        for u in updates:
            acc += u.arrays[key].astype(np.float64) * (u.num_examples / total)
        out[key] = acc.astype(updates[0].arrays[key].dtype)
    return out


def aggregate_round(
    server_round: int,
    global_adapter: dict[str, np.ndarray],
    updates: list[Update],
    rejected: list[Rejected],
    min_replies: int,
) -> tuple[dict[str, np.ndarray], list[Update], list[Rejected]]:
    """Validate replies, enforce the quorum, and return (new adapter, accepted, rejected)."""
    accepted: list[Update] = []
    rejected = list(rejected)
    for u in updates:
        reason = validate_update(u, global_adapter)
        if reason is None:
            accepted.append(u)
        else:
            rejected.append(Rejected(u.node_id, u.site_id, reason))
    check_quorum(server_round, accepted, rejected, min_replies)
    return fedavg(accepted), accepted, rejected
