"""Public-dataset importers, each on a tiny synthetic folder in that dataset's published layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from client.cli import main
from client.importers import import_dataset
from client.workdir import SiteDir
from common.errors import DataError
from common.store import Store
from simulation.phantom import render_case

SIZE = 64


def _case(seed: int, pathology: str):
    ph = render_case(seed, pathology, "device-a", size=SIZE)
    return ph.image, (ph.mask > 0).astype(np.uint8) * 255, ph.boxes


def _write(path, img) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _store(site: SiteDir) -> dict:
    return {r.extra["file"]: r for r in Store(site.store).records()}


def test_busi_merges_masks_and_skips_unmasked(tmp_path):
    root = tmp_path / "Dataset_BUSI_with_GT"
    truth = {}
    for k, pathology in enumerate(["benign", "malignant", "normal"]):
        img, mask, boxes = _case(k, pathology)
        _write(root / pathology / f"{pathology} (1).png", img)
        _write(root / pathology / f"{pathology} (1)_mask.png", mask)
        truth[f"{pathology}/{pathology} (1).png"] = boxes
    # A second, separate mask file for the benign image: OR-merged into a second box.
    extra = np.zeros((SIZE, SIZE), np.uint8)
    extra[2:8, 2:10] = 255
    _write(root / "benign" / "benign (1)_mask_1.png", extra)
    _write(root / "malignant" / "malignant (2).png", _case(5, "malignant")[0])  # no mask
    site = SiteDir(tmp_path / "site")
    summary = import_dataset("busi", tmp_path, site)
    assert summary["imported"] == {"benign": 1, "malignant": 1, "normal": 1}
    assert summary["skipped"] == [
        {"item": "malignant/malignant (2).png", "reason": "no readable mask of the image's size"}
    ]
    recs = _store(site)
    assert set(recs["benign/benign (1).png"].boxes) == set(truth["benign/benign (1).png"]) | {
        (2, 2, 10, 8)
    }
    assert recs["malignant/malignant (1).png"].boxes == tuple(truth["malignant/malignant (1).png"])
    assert recs["normal/normal (1).png"].boxes == ()
    assert len({r.patient for r in recs.values()}) == 3  # one image per patient
    again = import_dataset("busi", tmp_path, site)
    assert again["imported"] == {} and again["already_in_store"] == 3


def test_bus_bra_groups_patients_by_case(tmp_path):
    root = tmp_path / "BUSBRA"
    rows = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    for k, (ident, case, pathology, birads) in enumerate(
        [
            ("bus_0001-l", 1, "benign", "3"),
            ("bus_0001-r", 1, "benign", "4"),
            ("bus_0002-l", 2, "malignant", "5"),
        ]
    ):
        img, mask, _ = _case(10 + k, pathology)
        _write(root / "Images" / f"{ident}.png", img)
        _write(root / "Masks" / f"mask_{ident[4:]}.png", mask)
        rows.append(f"{ident},{case},x,{pathology},{birads},GE,{SIZE},{SIZE},left,[]")
    rows.append("bus_0003-l,3,x,benign,3,GE,64,64,left,[]")  # image file missing
    (root / "bus_data.csv").write_text("\n".join(rows) + "\n")
    site = SiteDir(tmp_path / "site")
    summary = import_dataset("bus-bra", tmp_path, site)
    assert summary["imported"] == {"benign": 2, "malignant": 1}
    assert summary["skipped"][0]["item"] == "bus_0003-l"
    recs = _store(site)
    assert recs["bus_0001-l"].patient == recs["bus_0001-r"].patient != recs["bus_0002-l"].patient
    assert recs["bus_0002-l"].birads == 5 and recs["bus_0002-l"].device == "GE"
    assert all(r.boxes for r in recs.values())


def test_breast_reads_spreadsheet_and_joined_masks(tmp_path):
    from openpyxl import Workbook

    root = tmp_path / "BrEaST-Lesions_USG-images_and_masks"
    wb = Workbook()
    ws = wb.active
    ws.title = "BrEaST-Lesions-USG clinical dat"
    ws.append(
        [
            "CaseID",
            "Image_filename",
            "Mask_tumor_filename",
            "Mask_other_filename",
            "BIRADS",
            "Classification",
        ]
    )
    for k, pathology in enumerate(["benign", "malignant", "normal"]):
        img, mask, _ = _case(20 + k, pathology)
        name = f"case{k + 1:03d}.png"
        _write(root / name, img)
        masks = []
        if pathology != "normal":
            half = mask.copy()
            half[:, SIZE // 2 :] = 0
            _write(root / f"case{k + 1:03d}_tumor.png", mask)
            _write(root / f"case{k + 1:03d}_tumor2.png", half)
            masks = [f"case{k + 1:03d}_tumor.png", f"case{k + 1:03d}_tumor2.png"]
        ws.append([k + 1, name, "&".join(masks) or None, None, "4a" if k else "3", pathology])
    ws.append([9, "case009.png", None, None, "2", "unknown"])
    wb.save(tmp_path / "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx")
    site = SiteDir(tmp_path / "site")
    summary = import_dataset("breast", tmp_path, site)
    assert summary["imported"] == {"benign": 1, "malignant": 1, "normal": 1}
    assert len(summary["skipped"]) == 1
    recs = _store(site)
    assert recs["case002.png"].birads == 4 and recs["case002.png"].boxes
    assert recs["case003.png"].boxes == ()


def test_bus_uclm_colour_masks_and_cli_json(tmp_path):
    root = tmp_path / "BUS-UCLM"
    lines = ["Image;Label;Resolution;Doppler;Marks;Combined"]
    for k, (name, pathology, colour) in enumerate(
        [("ALWI_000.png", "Benign", 1), ("ALWI_001.png", "", 2), ("BOPE_000.png", "Normal", None)]
    ):
        img, mask, _ = _case(30 + k, "normal" if colour is None else "benign")
        _write(root / "images" / name, img)
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        if colour is not None:
            rgb[..., colour] = mask  # BGR: 1 = green (benign), 2 = red (malignant)
        _write(root / "masks" / name, rgb)
        lines.append(f"{name};{pathology};0.1;0;0;0")
    (root / "INFO.csv").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(
        main, ["import", "bus-uclm", str(tmp_path), "--workdir", str(tmp_path / "site"), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["imported"] == {"benign": 1, "malignant": 1, "normal": 1}
    recs = _store(SiteDir(tmp_path / "site"))
    assert recs["ALWI_001.png"].pathology == "malignant"  # label empty: from the red mask
    assert (
        recs["ALWI_000.png"].patient == recs["ALWI_001.png"].patient != recs["BOPE_000.png"].patient
    )


def test_wrong_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a BUS-BRA folder"):
        import_dataset("bus-bra", tmp_path, SiteDir(tmp_path / "site"))
