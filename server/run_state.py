"""The coordinator's run state: global adapter checkpoints and the per-site table.

    STATE_DIR/
      run_state.json                  job id, rounds done, per-site table, round history
      checkpoints/round-0003.safetensors   global adapter after round 3 (adapter tensors only)
      sites.json                      registered sites (server.provision.SiteRegistry)
      superlink.db, flwr/, logs/      the SuperLink's own state

After every round the checkpoint is written first and `run_state.json` second, both via temp
file + rename; a crash between the two leaves the previous round as the resume point, never a
state that names a half-written checkpoint. Epsilon per site is the largest value the site has
reported (sites report cumulative spend); the consortium figure is the max over sites, never an
average.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import FederationError
from common.files import atomic_write_bytes

STATE_FILE = "run_state.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class SiteStatus:
    """One row of the per-site table."""

    site_id: str
    node_id: int | None = None
    rounds_joined: int = 0
    failures: int = 0
    epsilon: float | None = None  # this job's spend, as the site's accountant reports it
    site_epsilon: float | None = None  # the site's total over all jobs in its ledger
    delta: float | None = None
    accountant: str | None = None
    num_examples: int | None = None
    val_loss: float | None = None
    last_round: int | None = None
    last_error: str | None = None


@dataclass
class RunState:
    """Everything needed to resume a federated job and to show its progress."""

    job_id: str
    rounds: int
    min_train_sites: int
    completed_rounds: int = 0
    status: str = "running"  # running | completed | failed
    error: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    adapter_bytes: int | None = None
    sites: dict[str, SiteStatus] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    # --- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: Path) -> RunState:
        path = Path(state_dir) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise FederationError(f"{path}: no run state (has a run been started here?)") from exc
        except json.JSONDecodeError as exc:
            raise FederationError(f"{path}: run state is not valid JSON: {exc}") from exc
        sites = {k: SiteStatus(**v) for k, v in data.pop("sites", {}).items()}
        return cls(**data, sites=sites)

    def save(self, state_dir: Path) -> None:
        self.updated_at = _now()
        atomic_write_bytes(
            Path(state_dir) / STATE_FILE,
            json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True).encode(),
        )

    # --- per-site table ----------------------------------------------------------------
    def site(self, site_id: str, node_id: int | None = None) -> SiteStatus:
        row = self.sites.setdefault(site_id, SiteStatus(site_id=site_id))
        if node_id is not None:
            row.node_id = node_id
        return row

    def record_success(
        self,
        site_id: str,
        node_id: int,
        server_round: int,
        metrics: dict[str, float],
        num_examples: int,
    ) -> None:
        row = self.site(site_id, node_id)
        row.rounds_joined += 1
        row.last_round = server_round
        row.num_examples = num_examples
        for key, attr in (("epsilon", "epsilon"), ("site_epsilon", "site_epsilon")):
            if metrics.get(key) is not None:
                old = getattr(row, attr)
                setattr(
                    row, attr, float(metrics[key]) if old is None else max(old, float(metrics[key]))
                )
        if metrics.get("delta") is not None:
            row.delta = float(metrics["delta"])
        row.last_error = None

    def record_failure(
        self, site_id: str, node_id: int | None, server_round: int, reason: str
    ) -> None:
        row = self.site(site_id, node_id)
        row.failures += 1
        row.last_round = server_round
        row.last_error = reason

    def max_epsilon(self) -> float | None:
        eps = [s.epsilon for s in self.sites.values() if s.epsilon is not None]
        return max(eps) if eps else None

    def summary(self) -> dict:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error": self.error,
            "rounds": self.rounds,
            "completed_rounds": self.completed_rounds,
            "max_epsilon": self.max_epsilon(),
            "checkpoint": self.checkpoint,
            "adapter_bytes": self.adapter_bytes,
            "sites": {k: dataclasses.asdict(v) for k, v in sorted(self.sites.items())},
            "history": self.history,
        }


# --- checkpoints ----------------------------------------------------------------------
def save_checkpoint(
    state_dir: Path, server_round: int, adapter: dict[str, np.ndarray]
) -> tuple[str, str]:
    """Write the global adapter after `server_round`; return (relative path, sha256)."""
    from safetensors.numpy import save

    rel = f"checkpoints/round-{server_round:04d}.safetensors"
    data = save(
        {k: np.ascontiguousarray(v) for k, v in adapter.items()},
        metadata={"round": str(server_round), "content": "lora-adapter"},
    )
    atomic_write_bytes(Path(state_dir) / rel, data)
    return rel, hashlib.sha256(data).hexdigest()


def load_checkpoint(state_dir: Path, rel: str, sha256: str | None) -> dict[str, np.ndarray]:
    """Read a checkpoint and check it is the one the run state names."""
    from safetensors.numpy import load

    path = Path(state_dir) / rel
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FederationError(f"{path}: cannot read checkpoint: {exc.strerror}") from exc
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise FederationError(
            f"{path}: checkpoint hash does not match {STATE_FILE}; it was modified or truncated"
        )
    return load(data)
