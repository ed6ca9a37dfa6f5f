"""`train_adapters` on a real (tiny) site work dir: policy, ledger, statement, adapter file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from client.ledger import PrivacyLedger
from client.train import train_adapters
from client.train.job import standalone_config
from client.workdir import SiteDir
from common.config import load_config
from common.errors import ConfigError, PolicyError
from common.model import build_unet, save_base
from common.privacy import epsilon
from common.store import ImageRecord, Store

torch.set_num_threads(2)
TINY = [
    "model.image_size=32",
    "model.block_out_channels=[16,32]",
    "model.attention_levels=[false,true]",
    "model.attention_head_dim=8",
    "model.norm_num_groups=8",
    "dp.expected_batch_patients=3",
    "dp.max_images_per_patient=2",
]


def make_site(
    root: Path, patients: int = 14, policy: dict | None = None, overrides: tuple[str, ...] = ()
):
    """A site work dir with a store of random images, a policy, and a tiny base model."""
    site = SiteDir(root / "site")
    site.root.mkdir(parents=True)
    site.site_json.write_text(json.dumps({"site_id": "test-site"}))
    site.policy.write_text(yaml.safe_dump({"min_patients": 5, **(policy or {})}))
    store = Store.create(site.store)
    rng = np.random.default_rng(0)
    for p in range(patients):
        for j in range(1 + p % 3):
            store.add(
                ImageRecord(
                    image_id=f"p{p:02d}-{j}",
                    patient=f"patient-{p:02d}",
                    pathology=("benign", "malignant", "normal")[p % 3],
                    device="device-a",
                    width=40,
                    height=40,
                    boxes=((5, 5, 20, 24),),
                ),
                rng.integers(0, 255, (40, 40), dtype=np.uint8),
            )
    cfg = load_config("cpu-demo", [*TINY, *overrides])
    base = root / "base"
    torch.manual_seed(0)
    save_base(base, build_unet(cfg.model), cfg.model)
    return site, cfg, base


def test_two_rounds_record_blocks_and_reach_target_epsilon(tmp_path):
    site, cfg, base = make_site(
        tmp_path, overrides=("dp.local_steps=2", "federation.rounds=2", "dp.target_epsilon=6.0")
    )
    first = train_adapters(site, cfg, base, None, round=1, job_id="job-1")
    second = train_adapters(site, cfg, base, first.adapter_state, round=2, job_id="job-1")
    ledger = PrivacyLedger(site.ledger)
    events = [e["event"] for e in ledger.entries()]
    assert events == ["job-start", "dp-steps", "block-done", "dp-steps", "block-done"]
    st = second.statement
    assert (st.unit, st.steps, st.rounds, st.accountant) == ("patient", 4, 2, "prv")
    # calibrated for all planned rounds: after the last round epsilon is at (just under) target
    assert 0.9 * 6.0 <= st.epsilon <= 6.0
    assert first.statement.epsilon < st.epsilon
    assert st.epsilon == pytest.approx(epsilon(ledger.history("job-1"), st.delta, "prv"))
    assert st.delta < 1 / 14 and st.sample_rate == pytest.approx(3 / 10)
    assert second.num_examples % 10 == 0 and "loss" not in second.metrics
    assert all("lora_" in k for k in second.adapter_state)
    assert second.adapter_path.exists() and second.adapter_path.parent == site.adapters
    assert not torch.equal(
        torch.cat([v.flatten() for v in first.adapter_state.values()]),
        torch.cat([v.flatten() for v in second.adapter_state.values()]),
    )


def test_budget_exceeding_job_is_refused_before_training(tmp_path):
    """Through the CLI: a local job, then one the site total cannot afford, then the budget."""
    from click.testing import CliRunner

    from client.cli import main

    site, cfg, base = make_site(tmp_path, policy={"max_epsilon_total": 3.0})
    args = [
        "train",
        "--workdir",
        str(site.root),
        "--base",
        str(base),
        "--epsilon",
        "2.5",
        "--steps",
        "2",
        "--json",
        *[a for o in TINY for a in ("--set", o)],
    ]
    runner = CliRunner()
    first = runner.invoke(main, [*args, "--job-id", "job-1"])
    assert first.exit_code == 0, first.output
    statement = json.loads(first.stdout)["statement"]
    assert statement["epsilon"] <= 2.5 and statement["rounds"] == 1
    before = site.ledger.read_bytes()
    adapters_before = sorted(site.adapters.iterdir())
    with pytest.raises(PolicyError, match="refused before training"):
        train_adapters(site, cfg, base, None, round=1, job_id="job-2")
    refused = runner.invoke(main, [*args, "--job-id", "job-3"])
    assert refused.exit_code == PolicyError.exit_code and "max_epsilon_total" not in refused.output
    assert "3 allowed by the site policy" in refused.output
    assert site.ledger.read_bytes() == before
    assert sorted(site.adapters.iterdir()) == adapters_before
    budget = runner.invoke(main, ["budget", "--workdir", str(site.root), "--json"])
    summary = json.loads(budget.stdout)
    assert [(e["job_id"], e["steps"]) for e in summary["entries"]] == [("job-1", 2)]
    assert summary["total_epsilon"] == pytest.approx(statement["epsilon"])
    assert summary["remaining_epsilon_total"] == pytest.approx(3.0 - statement["epsilon"])
    assert runner.invoke(main, ["budget", "--workdir", str(site.root)]).exit_code == 0


def test_standalone_config_sets_one_round_and_validates_command_line_values():
    cfg = standalone_config(load_config("cpu-demo"), 2.5, 7)
    assert (cfg.dp.target_epsilon, cfg.dp.local_steps, cfg.federation.rounds) == (2.5, 7, 1)
    for bad in (float("nan"), float("inf")):  # click's FloatRange lets both through
        with pytest.raises(ConfigError, match=r"--epsilon.*'dp.target_epsilon' must be a finite"):
            standalone_config(load_config("cpu-demo"), bad, None)
