"""Audit checks on small phantom stores (32-64 px): memorization, PHI scan, DP bound, report."""

import base64
import json
import re

import cv2
import numpy as np
import pytest

from client.audit import (
    audit_memorization,
    augment,
    dp_section,
    find_text,
    phi_scan,
    run_audit,
    scan_png,
    tpr_bound,
)
from client.audit.memorization import ssim
from common.config import ModelConfig
from common.store import ImageRecord, Store
from simulation.phantom import render_case

SIZE = 32
DEVICES = ("device-a", "device-b")
PATHS = ("normal", "benign", "malignant")


def make_store(root, patients=30, per_patient=2, size=SIZE, seed=0) -> Store:
    """A site store of phantom images: `per_patient` views of each simulated patient."""
    store = Store.create(root)
    rng = np.random.default_rng(seed)
    for p in range(patients):
        pathology, device = PATHS[p % 3], DEVICES[p % 2]
        for k in range(per_patient):
            case = render_case(rng, pathology, device, size=size)
            boxes = tuple(tuple(int(v) for v in b) for b in case.boxes)
            store.add(
                ImageRecord(
                    image_id=f"s{seed}-p{p:03d}-{k}",
                    patient=f"pat{seed}-{p:03d}",
                    pathology=pathology,
                    device=device,
                    width=size,
                    height=size,
                    boxes=boxes,
                    birads=case.birads,
                ),
                case.image,
            )
    return store


def phantoms(n, size=SIZE, seed=100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [render_case(rng, PATHS[i % 3], DEVICES[i % 2], size=size).image for i in range(n)]
    )


def unit(x):
    return np.asarray(x, np.float32) / 255.0


@pytest.fixture(scope="module")
def site_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "store", patients=40)


def test_planted_copies_are_flagged_and_new_images_are_not():
    train, holdout, synthetic = phantoms(80, seed=1), phantoms(30, seed=2), phantoms(40, seed=3)
    synthetic[7] = train[12]  # exact copy
    synthetic[21] = np.round(augment(unit(train[40:41]), seed=5)[0] * 255).astype(
        np.uint8
    )  # disguised
    result = audit_memorization(unit(synthetic), unit(train), unit(holdout))
    flagged = set(np.nonzero(result.flagged)[0].tolist())
    assert {7, 21} <= flagged
    assert len(flagged) <= 4  # fresh phantoms are not copies
    assert result.synthetic.l2[7] < 1e-3 and result.synthetic.l2_index[7] == 12
    public = result.public()
    assert public["augmented_copies"]["caught_rate"]["any"] >= 0.95
    assert public["holdout_false_flag_rate"]["any"] <= 0.1
    assert "l2" in public["metrics_used"]


def test_flipped_copy_is_found_through_the_mirror():
    train = phantoms(20, seed=4)
    result = audit_memorization(unit(train[3:4, :, ::-1]), unit(train), unit(phantoms(10, seed=5)))
    assert result.flagged[0] and result.synthetic.l2_index[0] == 3


def test_ssim_is_one_for_identical_and_lower_for_different_images():
    a, b = unit(phantoms(2, seed=6))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-4)
    assert ssim(a, b) < 0.6


def test_dp_bound_matches_the_formula_and_is_rendered():
    assert tpr_bound(1.0, 1e-5, 0.001) == pytest.approx(np.e * 0.001 + 1e-5)
    assert tpr_bound(8.0, 1e-5, 0.01) == 1.0
    section = dp_section(
        {
            "epsilon": 1.0,
            "delta": 1e-5,
            "accountant": "prv",
            "unit": "patient",
            "noise_multiplier": 1.1,
            "sample_rate": 0.1,
            "max_grad_norm": 1.0,
            "steps": 30,
            "rounds": 3,
        }
    )
    assert section["tpr_bound"]["0.001"] == pytest.approx(0.0027283, rel=1e-3)
    assert section["claim"].startswith("(1.00, 1.0e-05)-DP per patient")
    with pytest.raises(ValueError, match="missing"):
        dp_section({"epsilon": 1.0})
    assert dp_section(None)["dp"] is False


def _burn(image, text, y):
    out = image.copy()
    cv2.putText(out, text, (1, y), cv2.FONT_HERSHEY_PLAIN, 0.7, 255, 1)
    return out


def test_phi_scan_catches_burned_in_text_and_png_text_chunks():
    from io import BytesIO

    from PIL import Image, PngImagePlugin

    clean = phantoms(40, size=64, seed=7)
    assert sum(bool(find_text(x)) for x in clean) == 0
    texts = ["JOHN DOE", "ID 4711", "12/03/21", "ST MARY"]
    burned = [_burn(x, texts[i % 4], 10 + 6 * i) for i, x in enumerate(clean[:8])]
    assert sum(bool(find_text(x)) for x in burned) >= 6

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Jane Roe")
    buf = BytesIO()
    Image.fromarray(clean[0]).save(buf, format="PNG", pnginfo=info)
    assert any("tEXt" in f and "Jane" in f for f in scan_png(buf.getvalue()))

    rows = [
        {"pathology": "benign", "birads": None, "device": "device-a", "box": [1, 2, 5, 6]},
        {
            "pathology": "benign",
            "birads": 3,
            "device": "device-a",
            "box": None,
            "patient_name": "DOE^JOHN",
        },
        {"pathology": "benign", "birads": None, "device": "MRN 12345678", "box": None},
    ]
    images = [clean[0], burned[0], clean[1]]
    result = phi_scan(images, [buf.getvalue()] * 3, rows, DEVICES)
    assert result["flagged_images"] == [1]
    assert not result["passed"]
    found = " ".join(result["metadata_row_findings"])
    assert "patient_name" in found and "ID-like" in found and "row 0" not in found


def test_phi_scan_ignores_saturated_speckle_but_not_text_on_it():
    """An under-trained generator saturates speckle all over an image; specks line up by chance
    but are no denser there than anywhere else. Text stays a dense line."""
    noisy = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        img = rng.integers(40, 190, (64, 64)).astype(np.uint8)
        img[rng.random((64, 64)) < 0.08] = 255
        noisy.append(img)
    assert sum(bool(find_text(x)) for x in noisy) == 0
    assert all(find_text(_burn(x // 2, "JOHN DOE", 30)) for x in noisy)


def test_public_report_contains_no_real_image(site_store, tmp_path):
    train, holdout = site_store.split(0.25)
    model_cfg = ModelConfig(image_size=SIZE, devices=DEVICES)
    synthetic = phantoms(24, seed=9)
    real_u8 = np.round((site_store.load_arrays(train, SIZE)[0] + 1) * 127.5).astype(np.uint8)
    synthetic[5] = real_u8[0]  # a planted copy
    rows = [
        {"pathology": PATHS[i % 3], "birads": None, "device": DEVICES[i % 2], "box": None}
        for i in range(len(synthetic))
    ]
    statement = {
        "epsilon": 4.0,
        "delta": 1e-4,
        "accountant": "prv",
        "unit": "patient",
        "noise_multiplier": 1.0,
        "sample_rate": 0.2,
        "max_grad_norm": 1.0,
        "steps": 20,
        "rounds": 2,
    }
    result = run_audit(
        synthetic,
        rows,
        site_store,
        train,
        holdout,
        model_cfg,
        statement,
        {"site_id": "hospital-x", "base_hash": "b" * 64, "adapter_hash": "a" * 64},
    )
    assert not result.keep[5] and result.keep.sum() >= len(synthetic) - 3
    assert result.audit["summary"]["n_removed_memorization"] >= 1
    assert result.audit["summary"]["n_released"] == int(result.keep.sum())

    # Decode every embedded picture of the public page; none may contain a real image.
    public = result.html + json.dumps(result.audit)
    real_bytes = [site_store.image_path(r.image_id).read_bytes() for r in train + holdout]
    embedded = [base64.b64decode(m) for m in re.findall(r"base64,([A-Za-z0-9+/=]+)", public)]
    assert embedded, "the public page should embed plots and synthetic images"
    for blob in embedded:
        assert not any(rb in blob for rb in real_bytes)
    grid = _decode_png(embedded[-1])  # the synthetic image grid
    assert _contains(grid, synthetic[result.keep][0])  # the tile search finds what is shown
    for real in real_u8:
        assert not _contains(grid, real)
    assert not any(r.patient in public or r.image_id in public for r in train + holdout)
    # The site-private page does show the copy and its training image, for review.
    assert train[0].image_id in result.private_html and "SITE-PRIVATE" in result.private_html
    assert "<img" in result.html and "(4.00, 1.0e-04)-DP per patient" in result.html


def _decode_png(blob):
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(blob)).convert("L"))


def _contains(grid, image, scale=2):
    """Is `image` (upscaled like the grid) a tile of `grid`?"""
    tile = np.kron(image, np.ones((scale, scale), np.uint8))
    h, w = tile.shape
    step_h, step_w = h + 2 * scale, w + 2 * scale
    for y in range(0, grid.shape[0] - h + 1, step_h):
        for x in range(0, grid.shape[1] - w + 1, step_w):
            if np.array_equal(grid[y : y + h, x : x + w], tile):
                return True
    return False
