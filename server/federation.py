"""Run federated jobs on Flower's Deployment Engine: the coordinator's library entry points.

The Flower app (FAB) is `server/flwr_app/pyproject.toml`, whose components point at
`server.server_app:app` and `client.client_app:app`. The FAB carries no code, because both
ends run the busgen-fed version they installed; a coordinator cannot push new code to a
hospital through the federation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from common.config import Config
from common.errors import ConfigError, FederationError
from common.files import atomic_write_bytes
from server import superlink as sl
from server.provision import SiteRegistry, check_node_public_key
from server.run_state import STATE_FILE, RunState

APP_PYPROJECT = Path(__file__).resolve().parent / "flwr_app" / "pyproject.toml"

Progress = Callable[[dict], None]


def write_app_dir(path: Path) -> Path:
    """Copy the shipped Flower app metadata into `path` (what `flwr run` packs into the FAB)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path / "pyproject.toml", APP_PYPROJECT.read_bytes())
    return path


def write_run_spec(
    state_dir: Path,
    cfg: Config,
    base_dir: Path,
    *,
    resume: bool = False,
    registry: Path | None = None,
) -> dict:
    """Describe the job in STATE_DIR/run_spec.json (read by the ServerApp).

    `registry` is the SuperLink's sites.json (default: STATE_DIR/sites.json, the layout where
    one directory holds both the SuperLink and the job).
    """
    from common.model import verify_base

    state_dir = Path(state_dir).resolve()
    fed = cfg.federation
    if fed.secagg:
        raise ConfigError(
            "federation.secagg: SecAgg+ is not available for adapter rounds "
            "(Flower 1.42 offers it only on its legacy NumPyClient path); "
            "set it to false"
        )
    if fed.min_train_sites < 1:
        raise ConfigError(
            f"federation.min_train_sites must be at least 1, got {fed.min_train_sites}"
        )
    job_id = None
    if (state_dir / STATE_FILE).exists():
        job_id = RunState.load(state_dir).job_id
        if not resume:
            raise FederationError(
                f"{state_dir}: already holds job {job_id}; pass --resume "
                "to continue it or choose a new state directory"
            )
    elif resume:
        raise FederationError(f"{state_dir}: nothing to resume (no {STATE_FILE})")
    spec = {
        "job_id": job_id or f"job-{uuid.uuid4().hex[:12]}",
        "config": cfg.to_dict(),
        "base_dir": str(Path(base_dir).resolve()),
        "base_hash": verify_base(base_dir),
        "rounds": fed.rounds,
        "min_train_sites": fed.min_train_sites,
        "reply_timeout_s": fed.reply_timeout_s,
        "node_wait_s": fed.node_wait_s,
        "round_retries": fed.round_retries,
        "validate": fed.validate,
        "resume": resume,
        "registry": str(Path(registry or state_dir / "sites.json").resolve()),
    }
    atomic_write_bytes(state_dir / "run_spec.json", json.dumps(spec, indent=2).encode())
    return spec


def register_site(state_dir: Path, public_key: Path, name: str) -> int:
    """Register a site's node key with the running SuperLink and record it in sites.json."""
    state_dir = Path(state_dir).resolve()
    key_text = check_node_public_key(public_key)
    registry = SiteRegistry(state_dir / "sites.json")
    known = registry.load().get(name)
    if known and known["public_key"] == key_text:
        return int(known["node_id"])  # the SuperLink database keeps registrations
    if known:
        raise FederationError(
            f"site {name!r} is registered with another key "
            f"(node {known['node_id']}); unregister it first"
        )
    node_id = sl.register_node(state_dir / "flwr", public_key, name)
    registry.add(name, node_id, key_text)
    return node_id


def submit_job(state_dir: Path, link_dir: Path | None = None) -> int:
    """Submit the job described by STATE_DIR/run_spec.json to the SuperLink whose state is in
    `link_dir` (default: the same directory); return the Flower run id."""
    state_dir = Path(state_dir).resolve()
    app_dir = write_app_dir(state_dir / "app")
    return sl.submit_run(
        Path(link_dir or state_dir) / "flwr", app_dir, {"state-dir": str(state_dir)}
    )


def follow_job(
    state_dir: Path,
    run_id: int,
    timeout_s: float,
    progress: Progress | None = None,
    link_dir: Path | None = None,
) -> dict:
    """Wait for the run to finish; return the run state summary, raise if it did not complete."""
    state_dir = Path(state_dir).resolve()
    link_dir = Path(link_dir or state_dir).resolve()
    last: list[str] = [""]

    def poll(_status: str) -> None:
        path = state_dir / STATE_FILE
        if progress and path.exists():
            stamp = path.read_text()
            if stamp != last[0]:
                last[0] = stamp
                progress(RunState.load(state_dir).summary())

    status = sl.wait_run(link_dir / "flwr", run_id, timeout_s, on_poll=poll)
    log_path = link_dir / "logs" / "superlink.log"
    if not (state_dir / STATE_FILE).exists():
        raise FederationError(
            f"run {run_id} ended {status} before writing any state; see {log_path}"
        )
    state = RunState.load(state_dir)
    summary = state.summary() | {"flower_run_id": run_id, "flower_status": status}
    if progress:
        progress(summary)
    if status != "finished:completed" or state.status != "completed":
        raise FederationError(
            f"federated job {state.job_id} ended {status} with state "
            f"'{state.status}' after {state.completed_rounds}/{state.rounds} "
            f"rounds: {state.error or 'see the SuperLink log'} ({log_path})"
        )
    return summary


def job_timeout(cfg: Config) -> float:
    """Generous wall-clock bound: every round may use its retries and its full timeouts."""
    fed = cfg.federation
    attempt = fed.node_wait_s + fed.reply_timeout_s
    per_round = attempt * (fed.round_retries + 1) + (fed.reply_timeout_s if fed.validate else 0)
    return 120.0 + fed.rounds * per_round
