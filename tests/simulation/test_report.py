"""The demo's report.html, rendered from a hand-made summary (no demo run needed)."""

import base64
import json
import re
from io import BytesIO

import numpy as np
from PIL import Image

from simulation.report import render_report


def _bundle(root):
    """A release folder with two synthetic images per class and its metadata."""
    (root / "train").mkdir(parents=True)
    rows = []
    for i, pathology in enumerate(["normal", "benign", "malignant"] * 2):
        name = f"{i:05d}.png"
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / "train" / name)
        rows.append({"file_name": name, "pathology": pathology})
    (root / "train" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _summary(bundle):
    site_row = {"rounds_joined": 2, "failures": 0, "epsilon": 3.21, "delta": 1e-5}
    history = [
        {"round": r, "ok": True, "val_loss": 0.5 / r, "train_metrics": {"a<b": {"epsilon": r}}}
        for r in (1, 2)
    ]
    return {
        "profile": "cpu-demo",
        "seed": 7,
        "total_seconds": 12.5,
        "timings": {"sites": 2.0, "release": 10.5},
        "privacy": {"accountant": "prv", "sites": {"a<b": {**site_row, "val_loss": None}}},
        "sites": {
            "a<b": {
                "device": "device-a",
                "ingest": {
                    "patients": 4,
                    "inputs": 9,
                    "deidentified": 8,
                    "quarantined": 1,
                    "text_boxes_blanked": 3,
                    "store_total": 8,
                    "store_added": {"benign": 5, "malignant": 3},  # no normal image added
                },
            }
        },
        "federation": {
            "adapter_bytes": 1000,
            "completed_rounds": 2,
            "rounds": 2,
            "status": "completed",
            "history": history,
        },
        "releases": {
            "a<b": {
                "bundle": str(bundle),
                "audit_link": "sites/a/release/audit.html",
                "n_released": 5,
                "n_generated": 6,
                "n_removed_memorization": 1,
                "n_removed_phi": 0,
                "mia_auc": 0.5123,
                "fd_metric": "FD_BlurCNN",
                "fd": 1.2345,
            }
        },
        "evidence": {
            "auc_trtr": {"auc": 0.9, "auc_ci": [0.8, 0.95], "n_images": 100},
            "auc_tstr": {"auc": 0.6, "auc_ci": [0.5, 0.7], "n_images": 100},
            "auc_real_plus_synth": None,
        },
    }


def test_report_shows_the_summary_and_embeds_its_figures(tmp_path):
    out = render_report(tmp_path, _summary(_bundle(tmp_path / "bundle")))
    html = out.read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "a&lt;b" in html and "a<b" not in text  # names are escaped
    assert "8 (0 / 5 / 3)" in text  # a class with no image counts 0
    assert "epsilon spent" not in text  # axis labels live in the figures, not in the page
    assert "Membership-inference AUC 0.512; FD_BlurCNN 1.23" in text
    assert "0.900 (95% CI 0.800-0.950; 100 training images)" in text
    assert "auc_real_plus_synth -" in text
    assert "<style>" in html and 'class="num"' in html  # the shared layout
    pictures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pictures) == 3  # epsilon plot, loss plot, release grid
    for blob in pictures:
        assert Image.open(BytesIO(base64.b64decode(blob))).format == "PNG"
