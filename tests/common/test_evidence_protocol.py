"""The evidence protocol end to end on a tiny simulated consortium: patient-disjoint splits,
synthetic-folder loading, report files, and same seeds -> same numbers.

The "synthetic" set here is a separately simulated population exported in the release's
folder layout: a test fixture for the data path, not generated data.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from common.config import load_config
from common.errors import DataError
from common.evidence import run_evidence
from common.evidence.data import (
    check_patient_disjoint,
    load_store_side,
    load_synthetic,
    release_epsilon,
    stratified_subset,
)
from common.store import Store
from simulation.phantom.sites import simulate_store

SITES = [
    ("hospital-a", "device-a", 14, 11),
    ("hospital-b", "device-b", 14, 12),
    ("hospital-c", "device-c", 14, 13),
]
OVERRIDES = [
    "data.holdout_fraction=0.35",
    "evidence.image_size=32",
    "evidence.classifier_epochs=2",
    "evidence.min_steps=8",
    "evidence.bootstrap=40",
    "evidence.scaling_sizes=[20,40]",
    "evidence.seeds=2",
]


def export_as_synthetic_folder(store_dir: Path, out: Path) -> Path:
    """Write a store's images as PNGs + metadata.jsonl (the release bundle's train/ layout)."""
    store = Store(store_dir)
    out.mkdir(parents=True)
    rows = []
    for i, rec in enumerate(store.records()):
        name = f"{i:05d}.png"
        Image.fromarray(store.load_image(rec)).save(out / name)
        rows.append(
            {
                "file_name": name,
                "pathology": rec.pathology,
                "device": rec.device,
                "birads": rec.birads,
                "box": list(rec.boxes[0]) if rec.boxes else None,
            }
        )
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    stores = [
        simulate_store(root / site, site, dev, n, 0.45, 0.1, seed, image_size=48).root
        for site, dev, n, seed in SITES
    ]
    folders = {}
    for label, seed in (("eps8", 101), ("eps1", 102)):
        src = root / f"src-{label}"
        for dev in ("device-a", "device-b", "device-c"):
            simulate_store(src, f"fixture-{dev}", dev, 8, 0.5, 0.0, seed, image_size=48)
        folders[label] = export_as_synthetic_folder(src, root / f"synthetic-{label}")
    return root, stores, folders


def test_patient_disjoint_split_never_shares_a_patient(consortium):
    _, stores, _ = consortium
    for frac in (0.2, 0.35, 0.5):
        for store in stores:
            train = load_store_side(store, "train", frac, 32)
            hold = load_store_side(store, "holdout", frac, 32)
            assert len(train) and len(hold)
            assert not set(train.patients) & set(hold.patients)
            check_patient_disjoint(train, hold)
            # every benign and malignant image lands on one side, every normal one on neither
            records = Store(store).records()
            normal = sum(r.pathology == "normal" for r in records)
            assert normal > 0 and len(train) + len(hold) == len(records) - normal
    train = load_store_side(stores[0], "train", 0.35, 32)
    with pytest.raises(DataError, match="patient-disjoint"):
        check_patient_disjoint(train, train.take(np.arange(3)))


def test_synthetic_folder_and_bundle_layouts(consortium, tmp_path):
    _, _, folders = consortium
    data = load_synthetic(folders["eps8"], 32)
    assert data.images.shape[1:] == (32, 32) and data.images.min() >= -1 and data.images.max() <= 1
    assert set(data.devices) == {"device-a", "device-b", "device-c"}
    bundle = tmp_path / "bundle"
    (bundle / "train").mkdir(parents=True)
    for p in folders["eps8"].iterdir():
        (bundle / "train" / p.name).write_bytes(p.read_bytes())
    (bundle / "manifest.json").write_text(json.dumps({"epsilon": 4.0}))
    assert len(load_synthetic(bundle, 32)) == len(data)
    assert release_epsilon(bundle) == 4.0
    with pytest.raises(DataError, match="epsilon is unknown"):
        release_epsilon(folders["eps8"])
    (bundle / "train" / "00000.png").unlink()
    with pytest.raises(DataError, match="00000.png"):
        load_synthetic(bundle, 32)


def test_stratified_subsets_nest_and_keep_both_classes(consortium):
    _, stores, _ = consortium
    data = load_store_side(stores[1], "train", 0.35, 32)
    small, large = stratified_subset(data, 10, 0), stratified_subset(data, 20, 0)
    assert len(small) == 10 and set(small.labels) == {0, 1}
    as_rows = lambda d: {img.tobytes() for img in d.images}  # noqa: E731
    assert as_rows(small) <= as_rows(large)


def test_run_evidence_writes_report_and_is_reproducible(consortium, tmp_path):
    _, stores, folders = consortium
    cfg = load_config("cpu-demo", OVERRIDES)
    # Labelled as the command line labels them (by folder name), so the two runs compare whole.
    synthetic = {"synthetic-eps8": (folders["eps8"], 8.0), "synthetic-eps1": (folders["eps1"], 1.0)}
    results = run_evidence(tmp_path / "ev", stores, stores, synthetic, cfg, show_progress=False)
    out = tmp_path / "ev"
    saved = json.loads((out / "results.json").read_text())
    for key in ("auc_trtr", "auc_tstr", "auc_real_plus_synth"):
        s = saved[key]
        assert s["n_images"] > 0 and len(s["auc_per_seed"]) == 2
        assert s["auc"] == pytest.approx(np.mean(s["auc_per_seed"]))  # the seeds' mean
    assert saved["tstr_over_trtr"] == pytest.approx(
        saved["auc_tstr"]["auc"] / saved["auc_trtr"]["auc"]
    )
    assert saved["auc_tstr"]["epsilon"] == 8.0 and saved["primary_release"] == "synthetic-eps8"
    assert saved["auc_tstr"]["n_images"] == saved["auc_trtr"]["n_images"]
    assert saved["auc_real_plus_synth"]["n_images"] == (
        saved["data"]["real_train"]["images"]
        + saved["data"]["synthetic"]["synthetic-eps8"]["images"]
    )
    assert [p["epsilon"] for p in saved["privacy_utility"]] == [8.0, 1.0]
    assert saved["cross_device"]["held_out_device"] == "device-c"
    assert "device-c" not in saved["cross_device"]["train_devices"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert {p.name for p in out.glob("*.png")} == {
        "roc.png",
        "scaling.png",
        "cross_device.png",
        "privacy_utility.png",
    }
    assert not list(tmp_path.glob(".ev.*"))  # no partial or old directories left behind

    # The command line, same config and seeds, into another directory: identical numbers.
    from server.cli import main

    cli = CliRunner().invoke(
        main,
        [
            "evidence",
            "--config",
            "cpu-demo",
            *sum((["--set", o] for o in OVERRIDES), []),
            *sum((["--real", str(s)] for s in stores), []),
            *sum((["--test-store", str(s)] for s in stores), []),
            "--synthetic",
            f"{folders['eps8']}@8",
            "--synthetic",
            f"{folders['eps1']}@1",
            "--out",
            str(tmp_path / "ev2"),
            "--json",
        ],
    )
    assert cli.exit_code == 0, cli.output
    again = json.loads((tmp_path / "ev2" / "results.json").read_text())
    for key in (
        "auc_trtr",
        "auc_tstr",
        "auc_real_plus_synth",
        "scaling",
        "cross_device",
        "privacy_utility",
    ):
        assert again[key] == results[key] == saved[key]


def test_missing_class_is_a_clear_error(consortium, tmp_path):
    _, stores, folders = consortium
    only_benign = tmp_path / "benign"
    only_benign.mkdir()
    rows = [
        json.loads(line) for line in (folders["eps8"] / "metadata.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["pathology"] == "benign"]
    for r in rows:
        (only_benign / r["file_name"]).write_bytes((folders["eps8"] / r["file_name"]).read_bytes())
    (only_benign / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config("cpu-demo", OVERRIDES)
    with pytest.raises(DataError, match="both benign"):
        run_evidence(
            tmp_path / "ev", stores, stores, {"b": (only_benign, 8.0)}, cfg, show_progress=False
        )
    assert not (tmp_path / "ev").exists()
