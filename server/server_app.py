"""The coordinator's Flower ServerApp (Message API): rounds of adapter FedAvg with a quorum.

Runs inside the SuperLink's ServerApp process. Its only run-config key is `state-dir`; the
coordinator writes `STATE_DIR/run_spec.json` (profile, base hash, rounds, quorum, timeouts)
before submitting the run, so the job is described by a file the operator can read. Each round:
wait for enough sites, send the global adapter, collect replies within the reply timeout,
validate them, enforce the quorum (retry the round, then fail the run loudly), average,
checkpoint, update the per-site table, then optionally validate (the sites' held-out loss).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from common.config import config_from_dict
from common.errors import FederationError
from server.provision import SiteRegistry
from server.run_state import RunState, load_checkpoint, save_checkpoint
from server.strategy import QuorumError, Rejected, Update, aggregate_round

log = logging.getLogger("busgen.server")
app = ServerApp()
SPEC_FILE = "run_spec.json"


def to_record(adapter: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in adapter.items()})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def initial_adapter(cfg, base_dir: str, base_hash: str | None) -> dict[str, np.ndarray]:
    """Round-1 adapter: LoRA injected into the base with the profile's seed. Every site starts
    from these same A matrices (B is zero), so averaging their updates is meaningful."""
    import torch

    from common.model import load_base
    from common.model.lora import adapter_state, inject_lora

    torch.manual_seed(cfg.seed)
    unet, _ = load_base(base_dir, base_hash)
    unet = inject_lora(unet, cfg.lora)
    return {k: v.detach().cpu().numpy() for k, v in adapter_state(unet).items()}


def wait_for_nodes(grid: Grid, needed: int, timeout_s: float) -> list[int]:
    """Connected node ids, once at least `needed` are online; QuorumError after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= needed:
            return nodes
        if time.monotonic() > deadline:
            raise QuorumError(
                f"only {len(nodes)} site(s) online after {timeout_s:.0f}s, {needed} needed"
            )
        time.sleep(2.0)


def match_replies(
    sent: dict[str, int], replies: Iterable[Message]
) -> tuple[dict[int, Message], list[int]]:
    """(replies by node id, nodes without a reply) for `sent`, message id -> destination node.

    A reply is matched by the id of the message it answers, never by its sender: the error reply
    the SuperLink writes for a dead node comes from node 1 (the SuperLink itself), and must count
    against the dead node.
    """
    by_node: dict[int, Message] = {}
    for reply in replies:
        nid = sent.get(reply.metadata.reply_to_message_id)
        if nid is not None and nid not in by_node:
            by_node[nid] = reply
    return by_node, [nid for nid in sent.values() if nid not in by_node]


def send(
    grid: Grid,
    nodes: list[int],
    kind: str,
    adapter: dict[str, np.ndarray],
    config: dict,
    timeout_s: float,
) -> tuple[dict[int, Message], list[int]]:
    """Send one message per node; return (replies by node id, nodes that did not answer).

    `Grid.send_and_receive` returns whatever replies arrived within `timeout_s`, without saying
    which messages they answer or which went unanswered; the grid writes each message's id into
    its metadata as it pushes it, which is what `match_replies` pairs them by.
    """
    messages = [
        Message(
            RecordDict({"arrays": to_record(adapter), "config": ConfigRecord(config)}),
            dst_node_id=nid,
            message_type=kind,
            group_id=str(config["server-round"]),
        )
        for nid in nodes
    ]
    replies = grid.send_and_receive(messages, timeout=timeout_s)
    sent = {m.metadata.message_id: nid for m, nid in zip(messages, nodes, strict=True)}
    if "" in sent or len(sent) != len(nodes):
        raise FederationError(
            f"{kind} round {config['server-round']}: the grid did not give every message its "
            "own id, so replies cannot be matched to sites"
        )
    return match_replies(sent, replies)


def site_name(names: dict[int, str], node_id: int) -> str:
    return names.get(node_id, f"node-{node_id}")


def collect_updates(
    replies: dict[int, Message], missing: list[int], names: dict[int, str], timeout_s: float
) -> tuple[list[Update], list[Rejected]]:
    """Turn train replies into Updates; errors, silence and impostors into Rejected."""
    updates, rejected = (
        [],
        [Rejected(n, site_name(names, n), f"no reply within {timeout_s:.0f}s") for n in missing],
    )
    for nid, reply in replies.items():
        name = site_name(names, nid)
        if reply.has_error():
            rejected.append(Rejected(nid, name, f"error reply: {reply.error.reason[-300:]}"))
            continue
        content = reply.content
        claimed = str(content["site"]["site-id"])
        if nid in names and claimed != names[nid]:
            rejected.append(Rejected(nid, name, f"claims to be {claimed!r}"))
            continue
        metrics = dict(content["metrics"])
        updates.append(
            Update(
                nid,
                names.get(nid, claimed),
                from_record(content["arrays"]),
                int(metrics.pop("num-examples")),
                metrics,
            )
        )
    return updates, rejected


def prepare_state(state_dir: Path, spec: dict, cfg) -> tuple[RunState, dict[str, np.ndarray]]:
    """New run, or resume: continue after the last checkpointed round of the same job."""
    if (state_dir / "run_state.json").exists():
        state = RunState.load(state_dir)
        if not spec.get("resume"):
            raise QuorumError(
                f"{state_dir}: holds job {state.job_id} "
                f"({state.completed_rounds}/{state.rounds} rounds); resume it "
                "with --resume or use a new state directory"
            )
        state.rounds = int(spec["rounds"])
        state.status, state.error = "running", None
        if state.checkpoint:
            adapter = load_checkpoint(state_dir, state.checkpoint, state.checkpoint_sha256)
            log.info("resuming job %s after round %d", state.job_id, state.completed_rounds)
            return state, adapter
    else:
        state = RunState(
            job_id=spec["job_id"],
            rounds=int(spec["rounds"]),
            min_train_sites=int(spec["min_train_sites"]),
        )
    return state, initial_adapter(cfg, spec["base_dir"], spec.get("base_hash"))


def run_rounds(grid: Grid, state_dir: Path, spec: dict) -> RunState:
    """The federated job; returns the final state (raises FederationError on a lost quorum)."""
    cfg = config_from_dict(spec["config"], source=str(state_dir / SPEC_FILE))
    state, adapter = prepare_state(state_dir, spec, cfg)
    names = SiteRegistry(Path(spec["registry"])).names_by_node()
    timeout = float(spec["reply_timeout_s"])
    quorum = int(spec["min_train_sites"])
    state.adapter_bytes = int(to_record(adapter).count_bytes())
    state.save(state_dir)
    for rnd in range(state.completed_rounds + 1, state.rounds + 1):
        config = {
            "server-round": rnd,
            "job-id": state.job_id,
            "rounds": state.rounds,
            "config": json.dumps(spec["config"]),
            "base-hash": spec.get("base_hash") or "",
        }
        for attempt in range(int(spec.get("round_retries", 1)) + 1):
            t0 = time.monotonic()
            try:
                nodes = wait_for_nodes(grid, quorum, float(spec.get("node_wait_s", timeout)))
                replies, missing = send(grid, nodes, MessageType.TRAIN, adapter, config, timeout)
                updates, rejected = collect_updates(replies, missing, names, timeout)
                new, accepted, rejected = aggregate_round(rnd, adapter, updates, rejected, quorum)
            except QuorumError as exc:
                state.history.append(
                    {
                        "round": rnd,
                        "attempt": attempt,
                        "ok": False,
                        "error": str(exc),
                        "wall_s": time.monotonic() - t0,
                    }
                )
                for r in exc.rejected:
                    state.record_failure(r.site_id, r.node_id, rnd, r.reason)
                state.error = str(exc)
                state.save(state_dir)
                log.error("%s (attempt %d)", exc, attempt + 1)
                continue
            break
        else:
            state.status = "failed"
            state.save(state_dir)
            raise QuorumError(f"job {state.job_id} stopped at round {rnd}: {state.error}")
        adapter = new
        state.checkpoint, state.checkpoint_sha256 = save_checkpoint(state_dir, rnd, adapter)
        for u in accepted:
            state.record_success(u.site_id, u.node_id, rnd, u.metrics, u.num_examples)
        for r in rejected:
            state.record_failure(r.site_id, r.node_id, rnd, r.reason)
        state.completed_rounds, state.error = rnd, None
        state.history.append(
            {
                "round": rnd,
                "attempt": attempt,
                "ok": True,
                "wall_s": time.monotonic() - t0,
                "sites": sorted(u.site_id for u in accepted),
                "failed": sorted(r.site_id for r in rejected),
                "bytes_down": state.adapter_bytes * len(nodes),
                "bytes_up": state.adapter_bytes * len(accepted),
                "train_metrics": {u.site_id: u.metrics for u in accepted},
            }
        )
        state.save(state_dir)
        log.info("round %d: aggregated %d site(s), %d failed", rnd, len(accepted), len(rejected))
        if spec.get("validate", True):
            validate_round(grid, state, state_dir, nodes, adapter, config, names, timeout)
    state.status = "completed"
    state.save(state_dir)
    return state


def validate_round(
    grid: Grid,
    state: RunState,
    state_dir: Path,
    nodes: list[int],
    adapter: dict[str, np.ndarray],
    config: dict,
    names: dict[int, str],
    timeout_s: float,
) -> None:
    """Validation loss of the new global adapter on each site's held-out patients."""
    replies, _ = send(grid, nodes, MessageType.EVALUATE, adapter, config, timeout_s)
    losses, weights = [], []
    for nid, reply in replies.items():
        if reply.has_error():
            continue
        metrics = reply.content["metrics"]
        row = state.site(site_name(names, nid), nid)
        row.val_loss = float(metrics["val-loss"])
        losses.append(row.val_loss)
        weights.append(int(metrics["num-examples"]))
    if losses:
        state.history[-1]["val_loss"] = float(np.average(losses, weights=weights))
    state.save(state_dir)


@app.main()
def main(grid: Grid, context: Context) -> None:
    state_dir = Path(str(context.run_config["state-dir"]))
    spec = json.loads((state_dir / SPEC_FILE).read_text())
    run_rounds(grid, state_dir, spec)
