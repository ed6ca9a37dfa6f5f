"""The README's main job at a tiny size: every stage runs for real and resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.release.bundle import verify_bundle

TINY = [
    "simulation.sites=[{site_id: site-a, device: device-a, patients: 32, seed: 1}, "
    "{site_id: site-b, device: device-b, patients: 32, seed: 2}]",
    "simulation.pretrain_patients=12",
    "pretrain.steps=20",
    "pretrain.checkpoint_every=10",
    "model.image_size=32",
    "model.block_out_channels=[16,32]",
    "model.attention_levels=[false,true]",
    "model.norm_num_groups=8",
    "model.attention_head_dim=8",
    "federation.rounds=1",
    "release.n_images=12",
    "sampling.steps=5",
    "evidence.seeds=1",
]


def _demo(run_dir: Path, cache: Path) -> subprocess.CompletedProcess:
    args = [str(Path(sys.executable).parent / "busgen-server"), "demo", "--out", str(run_dir)]
    for item in TINY:
        args += ["--set", item]
    env = {**os.environ, "BUSGEN_CACHE": str(cache)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)


@pytest.mark.e2e
def test_demo_end_to_end_then_resume(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    first = _demo(run_dir, cache)
    assert first.returncode == 0, first.stderr[-3000:]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["federation"]["status"] == "completed"
    assert summary["federation"]["completed_rounds"] == 1
    assert 0 < summary["privacy"]["max_epsilon"] <= 8.0 + 1e-6
    assert set(summary["releases"]) == {"site-a", "site-b"}
    for site in ("site-a", "site-b"):
        bundle = run_dir / "sites" / site / "release"
        manifest = verify_bundle(bundle, run_dir / "server" / "trust.json")
        assert manifest["site_id"] == site
    evidence = json.loads((run_dir / "evidence" / "results.json").read_text())
    for key in ("auc_trtr", "auc_tstr", "auc_real_plus_synth"):  # the report shows these numbers
        assert summary["evidence"][key]["auc"] == evidence[key]["auc"]
        assert evidence[key]["auc"] == pytest.approx(np.mean(evidence[key]["auc_per_seed"]))
    assert evidence["auc_tstr"]["epsilon"] == 8.0
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # epsilon plot, loss plot, release grids
    assert "the patient" in html and "site-a" in html

    again = _demo(run_dir, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already done, skipping (resume)") == 6
