"""The site's Flower ClientApp: thin handlers between Flower messages and `client.train`.

Each Flower message starts a fresh `flwr-clientapp` process, so this module imports only Flower
at load time; torch and the training code are imported inside the handlers, and the time from
process start to the start of training is reported as `cold-start-s`. Everything site-specific
comes from the node config (`workdir`, `base-dir`), never from the run config; the profile the
coordinator sends is validated by the same strict loader as a local file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _process_age_s() -> float:
    """Seconds since this process started (imports included): the site's cold start."""
    import psutil

    return time.time() - psutil.Process().create_time()


def _job(msg: Message, context: Context):
    """Site dir, validated profile, base dir, global adapter (torch) and round of a message.

    The site's base must be the coordinator's (same content hash), or the adapter would be
    trained against other weights than the ones it is averaged with.
    """
    from client.approval import installed_app_hash, require_approved
    from client.workdir import SiteDir

    site = SiteDir(Path(str(context.node_config["workdir"])))
    require_approved(site, installed_app_hash(), context.run_id)  # default deny (client.approval)

    import torch  # noqa: F401  (ArrayRecord.to_torch_state_dict needs it imported)

    from common.config import config_from_dict
    from common.model.checkpoint import verify_base

    cfg_msg = msg.content["config"]
    cfg = config_from_dict(json.loads(str(cfg_msg["config"])), source="coordinator profile")
    base_dir = Path(str(context.node_config.get("base-dir") or site.root / "base"))
    verify_base(base_dir, str(cfg_msg["base-hash"]) or None)
    adapter = msg.content["arrays"].to_torch_state_dict()
    return site, cfg, base_dir, adapter, int(cfg_msg["server-round"]), str(cfg_msg["job-id"])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the adapter with DP on the site's store; reply with adapter + privacy statement."""
    site, cfg, base_dir, adapter, rnd, job_id = _job(msg, context)
    from client.train import train_adapters

    cold_start = _process_age_s()
    t0 = time.monotonic()
    result = train_adapters(site, cfg, base_dir, adapter, rnd, job_id)
    st = result.statement
    metrics = {
        "num-examples": int(result.num_examples),
        "epsilon": float(st.epsilon),
        "delta": float(st.delta),
        "cold-start-s": cold_start,
        "train-s": time.monotonic() - t0,
    }
    metrics.update(
        {
            k: float(v)
            for k, v in result.metrics.items()
            if isinstance(v, (int, float)) and k not in metrics
        }
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord(result.adapter_state),
            "metrics": MetricRecord(metrics),
            "site": ConfigRecord(
                {"site-id": site.site_id(), "statement": json.dumps(st.to_dict())}
            ),
        }
    )
    return Message(content, reply_to=msg)


@app.evaluate()
def validate(msg: Message, context: Context) -> Message:
    """Validation loss of the received global adapter on the site's held-out patients."""
    site, cfg, base_dir, adapter, _, _ = _job(msg, context)
    from client.validate import validate_adapters

    result = validate_adapters(site, cfg, base_dir, adapter)
    content = RecordDict(
        {
            "metrics": MetricRecord(
                {"val-loss": float(result["val_loss"]), "num-examples": int(result["num_examples"])}
            ),
            "site": ConfigRecord({"site-id": site.site_id()}),
        }
    )
    return Message(content, reply_to=msg)
