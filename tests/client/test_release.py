"""`make_release` and `busgen-site release` end to end on a tiny model: a signed bundle that
verifies, with the audit inside and the real-image review kept at the site."""

import json

import pytest
import torch
from click.testing import CliRunner

from client.workdir import SiteDir
from common.config import load_config
from tests.client.test_audit import make_store
from tests.client.test_audit_mia import TINY


def _site(tmp_path):
    torch.set_num_threads(1)  # the test machine is shared: one thread is faster under load
    from safetensors.torch import save_file

    from common.model import build_unet, save_base
    from common.model.lora import adapter_state, inject_lora
    from common.release.signing import generate_signing_key

    site = SiteDir(tmp_path / "site")
    site.root.mkdir(parents=True)
    site.site_json.write_text(json.dumps({"site_id": "hospital-t"}))
    generate_signing_key(site.signing_key, site.signing_public_key, site.signing_passphrase)
    make_store(site.store, patients=20, per_patient=2, seed=4)
    torch.manual_seed(0)
    unet = build_unet(TINY)
    base = tmp_path / "base"
    save_base(base, unet, TINY, {})
    cfg = load_config(
        "cpu-demo",
        ["sampling.steps=5", "sampling.batch_size=16", "lora.targets=attention", "lora.rank=4"],
    )
    inject_lora(unet, cfg.lora)
    site.adapters.mkdir()
    adapter = site.adapters / "job-round001.safetensors"
    save_file(adapter_state(unet), str(adapter))
    return site, cfg, base, adapter


@pytest.mark.e2e
def test_release_writes_a_verifiable_bundle(tmp_path):
    from client import site_log
    from client.release import conditions, make_release
    from common.files import sha256_file
    from common.release.bundle import verify_bundle
    from common.release.signing import add_trusted_key

    site, cfg, base, adapter = _site(tmp_path)
    statement = {
        "epsilon": 8.0,
        "delta": 1e-4,
        "accountant": "prv",
        "unit": "patient",
        "noise_multiplier": 0.9,
        "sample_rate": 0.2,
        "max_grad_norm": 1.0,
        "steps": 30,
        "rounds": 3,
    }
    summary = make_release(site, cfg, base, adapter, 12, site.release, statement=statement)
    assert summary["n_generated"] == 12 and 1 <= summary["n_released"] <= 12
    # The site log records what left, by the hash of the signed manifest.
    [entry] = site_log.events(site, "release")
    assert entry["site_id"] == "hospital-t" and entry["bundle"] == str(site.release)
    assert entry["manifest_sha256"] == sha256_file(site.release / "manifest.json")
    assert entry["manifest_sha256"] == summary["manifest_sha256"]
    assert entry["n_images"] == summary["n_released"]
    trust = tmp_path / "trust.json"
    add_trusted_key(trust, "hospital-t", site.signing_public_key)
    manifest = verify_bundle(site.release, trust)
    assert manifest["site_id"] == "hospital-t" and len(manifest["adapter_hash"]) == 64
    audit = json.loads((site.release / "audit.json").read_text())
    assert audit["dp"]["epsilon"] == 8.0 and audit["summary"]["n_released"] == summary["n_released"]
    assert audit["mia"]["patient_level"]["n_members"] > 0
    card = (site.release / "README.md").read_text()
    assert "NOT for diagnosis" in card and "(8.00, 1.0e-04)-DP per patient" in card
    rows = [
        json.loads(line)
        for line in (site.release / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    assert {r["device"] for r in rows} <= {"device-a", "device-b"} and len(rows) == summary[
        "n_released"
    ]
    # The review with real images stays under private/, outside the bundle.
    private = list((site.private / "audit").glob("memorization-review-*.html"))
    assert private and "SITE-PRIVATE" in private[0].read_text()
    assert not any(p.name.startswith("memorization-review") for p in site.release.rglob("*"))

    pathology, device = conditions(7, (0.2, 0.45, 0.35), ["device-a"])
    assert len(pathology) == 7 and pathology.count("benign") == 3 and set(device) == {"device-a"}


@pytest.mark.e2e
def test_release_command(tmp_path):
    from client import site_log
    from client.cli import main

    site, cfg, base, adapter = _site(tmp_path)
    out = tmp_path / "bundle"
    args = [
        "release",
        "--workdir",
        str(site.root),
        "--n",
        "8",
        "--out",
        str(out),
        "--base",
        str(base),
        "--set",
        "sampling.steps=5",
        "--set",
        "lora.targets=attention",
        "--set",
        "lora.rank=4",
    ]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["site_id"] == "hospital-t" and summary["bundle"] == str(out)
    assert (out / "manifest.sig").exists()
    [entry] = site_log.events(site, "release")
    assert entry["manifest_sha256"] == summary["manifest_sha256"]
    # A second release to the same --out is refused before anything is generated, and the
    # bundle and the site log are left as they were.
    manifest = (out / "manifest.json").read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "already exists" in again.output
    assert (out / "manifest.json").read_bytes() == manifest
    assert len(site_log.events(site, "release")) == 1
