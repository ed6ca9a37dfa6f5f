"""`busgen-server pretrain` and `busgen-site generate` on a tiny model, end to end on CPU."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from client.cli import main as site_cli
from common.config import load_config
from server.cli import main as server_cli
from tests.common.test_model import TINY, synthetic_store


def read_images(out):
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return rows, np.stack([np.asarray(Image.open(out / r["file"])) for r in rows])


def test_pretrain_then_generate_with_and_without_adapter(tmp_path):
    from client.train import save_adapter
    from common.model import load_base
    from common.model.lora import adapter_state, inject_lora

    synthetic_store(tmp_path / "store", n_patients=6)
    sets = [a for s in TINY for a in ("--set", s)]
    runner = CliRunner()
    res = runner.invoke(
        server_cli,
        [
            "pretrain",
            "--data",
            str(tmp_path / "store"),
            "--out",
            str(tmp_path / "base"),
            "--json",
            *sets,
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["finished"] and summary["step"] == 6 and len(summary["content_hash"]) == 64

    site = tmp_path / "site"
    (site / "adapters").mkdir(parents=True)
    gen_args = [
        "generate",
        "--workdir",
        str(site),
        "--base",
        str(tmp_path / "base"),
        "--n",
        "4",
        "--seed",
        "1",
        *sets,
    ]
    res = runner.invoke(site_cli, [*gen_args, "--out", str(tmp_path / "g0"), "--json"])
    assert res.exit_code == 0, res.output
    rows, base_images = read_images(tmp_path / "g0")
    assert base_images.shape == (4, 32, 32)
    assert [r["pathology"] for r in rows] == ["normal", "benign", "malignant", "normal"]
    assert rows[0]["boxes"] == [] and len(rows[1]["boxes"]) == 1
    assert rows[0]["base_hash"] == summary["content_hash"] and rows[0]["adapter"] is None
    assert rows[1]["box_prior_epsilon"] == 1.0  # boxes came from the base's DP prior

    # a (non-zero) adapter in the site's adapters/ is picked up and changes the images
    cfg = load_config("cpu-demo", TINY)
    unet, _ = load_base(tmp_path / "base")
    inject_lora(unet, cfg.lora)
    state = {
        k: (torch.randn_like(v) * 0.5 if "lora_B" in k else v)
        for k, v in adapter_state(unet).items()
    }
    save_adapter(site / "adapters" / "job-round001.safetensors", state, {"round": "1"})
    res = runner.invoke(site_cli, [*gen_args, "--out", str(tmp_path / "g1"), "--json"])
    assert res.exit_code == 0, res.output
    rows, adapted = read_images(tmp_path / "g1")
    assert (
        rows[0]["adapter"].endswith("job-round001.safetensors")
        and len(rows[0]["adapter_sha256"]) == 64
    )
    assert np.abs(adapted.astype(int) - base_images.astype(int)).mean() > 1.0

    # the output directory is never overwritten, and a wrong expected hash is refused
    res = runner.invoke(site_cli, [*gen_args, "--out", str(tmp_path / "g1")])
    assert res.exit_code != 0 and "not empty" in res.output
    res = runner.invoke(
        site_cli, [*gen_args, "--out", str(tmp_path / "g2"), "--expected-hash", "0" * 64]
    )
    assert res.exit_code == 4 and "expected" in res.output
    assert not (tmp_path / "g2").exists()
