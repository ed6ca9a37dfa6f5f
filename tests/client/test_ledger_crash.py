"""A training process killed mid-job leaves a ledger that accounts for every step it ran."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.ledger import PrivacyLedger
from common.config import load_config
from tests.client.test_dp_job import TINY, make_site

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from client.train import train_adapters
from client.workdir import SiteDir
from common.config import load_config
site, base, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
train_adapters(SiteDir(site), load_config("cpu-demo", overrides), base, None, 1, "job-crash")
"""


def test_kill_mid_job_leaves_ledger_covering_every_step(tmp_path):
    overrides = [*TINY, "dp.local_steps=500", "federation.rounds=1", "dp.accountant=rdp"]
    site, _, base = make_site(tmp_path, overrides=tuple(overrides[len(TINY) :]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(site.root), str(base), json.dumps(overrides)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ledger = PrivacyLedger(site.ledger)
    deadline = time.time() + 120
    try:
        while not (site.ledger.exists() and ledger.blocks()):  # the write-ahead block is there
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "training never started"
            time.sleep(0.2)
        time.sleep(3)  # now inside the DP-SGD loop
        assert proc.poll() is None, "the job finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    entries = ledger.entries()  # the hash chain still verifies
    assert [e["event"] for e in entries] == ["job-start", "dp-steps"]
    assert entries[1]["steps"] == 500 and entries[1]["round"] == 1
    # The noise was calibrated so that all 500 steps reach the target: the ledger charges the
    # whole block (written before the first step), not the few steps that ran.
    target = load_config("cpu-demo", overrides).dp.target_epsilon
    assert 0.95 * target <= ledger.total_epsilon("rdp") <= target
    # nothing the coordinator could have received, and no half-written adapter that looks complete
    assert not site.adapters.exists() or not list(site.adapters.glob("*.safetensors"))
