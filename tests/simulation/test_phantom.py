"""The phantom's statistics: speckle, lesion morphology per class, devices, determinism, store."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from common.errors import DataError
from common.store import Store
from simulation.phantom import DEVICES, render_case, simulate_multi_device_store, simulate_store
from simulation.phantom.bmode import speckle_envelope

RAYLEIGH_SNR = np.sqrt(np.pi / (4 - np.pi))  # 1.913
RAYLEIGH_LOG_STD_DB = 5.57  # std of 20*log10 of a Rayleigh variable


def test_fully_developed_speckle_is_rayleigh():
    rng = np.random.default_rng(0)
    env = speckle_envelope(rng, np.ones((256, 256), np.float32), 1.2, np.linspace(1.0, 3.0, 256))
    assert env.mean() / env.std() == pytest.approx(RAYLEIGH_SNR, abs=0.05)
    assert (20 * np.log10(env)).std() == pytest.approx(RAYLEIGH_LOG_STD_DB, abs=0.15)
    # Brightness does not depend on the PSF (kernels have unit energy) nor on the image edge.
    wide = speckle_envelope(rng, np.ones((256, 256), np.float32), 3.0, 4.0)
    assert (wide**2).mean() == pytest.approx(1.0, abs=0.1)
    assert (env[:8] ** 2).mean() == pytest.approx(1.0, abs=0.15)


def test_rendered_cyst_interior_has_rayleigh_speckle():
    """Inside an anechoic cyst, far from its wall, the rendered envelope is fully developed speckle."""
    snrs = []
    for seed in range(60):
        img = render_case(seed, "benign", "device-a", keep_envelope=True)
        if img.lesions[0].kind != "cyst":
            continue
        core = cv2.erode((img.mask == 1).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        if core.sum() >= 80:
            env = img.envelope[core]
            snrs.append(env.mean() / env.std())
    assert len(snrs) >= 3
    assert np.median(snrs) == pytest.approx(RAYLEIGH_SNR, abs=0.2)


def test_render_is_deterministic_per_seed():
    a = render_case(7, "malignant", "device-b", 96)
    b = render_case(7, "malignant", "device-b", 96)
    c = render_case(8, "malignant", "device-b", 96)
    assert (
        np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.boxes == b.boxes
    )
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_labels_are_consistent(device):
    for seed in range(12):
        pathology = ("normal", "benign", "malignant")[seed % 3]
        img = render_case(seed, pathology, device, (80, 96))
        assert img.image.shape == img.mask.shape == (80, 96) and img.image.dtype == np.uint8
        if pathology == "normal":
            assert img.boxes == () and img.birads == 1 and not img.mask.any()
            continue
        assert img.birads in ((2, 3, 4) if pathology == "benign" else (4, 5))
        for k, (x0, y0, x1, y1) in enumerate(img.boxes, 1):
            rows, cols = np.nonzero(img.mask == k)
            assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
            rx0, ry0, rx1, ry1 = img.region
            assert rx0 <= x0 and x1 - 1 <= rx1 and ry0 <= y0 and y1 - 1 <= ry1


def _descriptors(img, k=1):
    """Circularity, depth/width ratio (mm), contrast to the surroundings, posterior feature."""
    m = (img.mask == k).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    circularity = 4 * np.pi * cv2.contourArea(c) / cv2.arcLength(c, True) ** 2
    x0, y0, x1, y1 = img.boxes[k - 1]
    dz, dx = img.spacing_mm
    ring = (cv2.dilate(m, np.ones((9, 9), np.uint8)) > 0) & (m == 0)
    contrast = img.image[m > 0].mean() - img.image[ring].mean()
    w = x1 - x0
    below = img.image[y1 + 2 : y1 + 20, x0:x1].astype(float)
    beside = np.r_[
        img.image[y1 + 2 : y1 + 20, max(0, x0 - w) : x0].ravel(),
        img.image[y1 + 2 : y1 + 20, x1 : x1 + w].ravel(),
    ].astype(float)
    return circularity, (y1 - y0) * dz / ((x1 - x0) * dx), contrast, below.mean() - beside.mean()


def test_lesion_morphology_follows_the_lexicon():
    by_kind: dict[str, list] = {}
    for seed in range(160):
        img = render_case(1000 + seed, ("benign", "malignant")[seed % 2], "device-a")
        by_kind.setdefault(img.lesions[0].kind, []).append(_descriptors(img))
    med = {k: np.median(np.array(v), axis=0) for k, v in by_kind.items() if len(v) >= 5}
    assert {"cyst", "fibroadenoma", "carcinoma-spiculated", "carcinoma-irregular"} <= set(med)
    circ, tall, contrast, post = (0, 1, 2, 3)
    # Shape: carcinomas are less circular and taller than wide; benign masses are parallel.
    for bad in ("carcinoma-spiculated", "carcinoma-irregular"):
        for good in ("cyst", "fibroadenoma"):
            assert med[bad][circ] < med[good][circ] - 0.1
        assert med[bad][tall] > 1.0
    assert med["fibroadenoma"][tall] < 0.8 and med["cyst"][tall] < 1.0
    # Echo pattern: cysts anechoic, carcinomas markedly and fibroadenomas mildly hypoechoic.
    assert (
        med["cyst"][contrast]
        < med["carcinoma-spiculated"][contrast]
        < med["fibroadenoma"][contrast]
        < -10
    )
    # Posterior features: enhancement behind cysts, shadowing behind carcinomas.
    assert med["cyst"][post] > 8
    assert med["carcinoma-spiculated"][post] < -10 and med["carcinoma-irregular"][post] < -10


def test_devices_differ_like_scanners():
    imgs = {d: [render_case(s, "normal", d) for s in range(4)] for d in DEVICES}

    def lateral_corr(image):  # speckle grain across the beam: lag-2 autocorrelation
        x = image[20:-20, 20:-20].astype(float)
        x = x - x.mean(axis=1, keepdims=True)
        return (x[:, 2:] * x[:, :-2]).mean() / (x * x).mean()

    corr = {d: np.mean([lateral_corr(i.image) for i in v]) for d, v in imgs.items()}
    assert corr["device-b"] > corr["device-a"] + 0.1  # lower frequency: coarser speckle
    shapes = {d: v[0].image.shape for d, v in imgs.items()}
    assert len(set(shapes.values())) == 3
    b = imgs["device-b"][0]
    assert b.image[:3, :3].max() == 0 and imgs["device-a"][0].image[:3, 8:11].min() > 0  # trapezoid
    tints = {DEVICES[d].tint for d in DEVICES}
    assert len(tints) == 3 and imgs["device-c"][0].rgb().shape == shapes["device-c"] + (3,)


def test_mean_intensity_does_not_separate_benign_from_malignant():
    from sklearn.metrics import roc_auc_score

    means, labels = [], []
    for seed in range(240):
        img = render_case(
            5000 + seed, ("benign", "malignant")[seed % 2], sorted(DEVICES)[seed % 3], 64
        )
        means.append(img.image.mean())
        labels.append(seed % 2)
    auc = roc_auc_score(labels, means)
    assert max(auc, 1 - auc) < 0.75


def test_simulate_store_is_deterministic_resumable_and_patient_level(tmp_path):
    store = simulate_store(tmp_path / "a", "hospital-x", "device-c", 25, 0.4, 0.1, seed=3)
    records = store.records()
    per_patient: dict[str, list] = {}
    for rec in records:
        per_patient.setdefault(rec.patient, []).append(rec)
        assert (
            rec.device == "device-c" and (rec.height, rec.width) == DEVICES["device-c"].native_size
        )
        for x0, y0, x1, y1 in rec.boxes:
            assert 0 <= x0 < x1 <= rec.width and 0 <= y0 < y1 <= rec.height
        assert (rec.pathology == "normal") == (rec.boxes == ())
    assert len(per_patient) == 25
    assert all(1 <= len(v) <= 6 for v in per_patient.values())
    assert max(len(v) for v in per_patient.values()) > 1
    assert all(len({r.pathology for r in v}) == 1 for v in per_patient.values())
    assert not any("hospital" in r.patient for r in records)  # pseudonyms, not names

    index = (tmp_path / "a" / "index.jsonl").read_text()
    assert len(
        simulate_store(tmp_path / "a", "hospital-x", "device-c", 25, 0.4, 0.1, seed=3)
    ) == len(records)
    assert (tmp_path / "a" / "index.jsonl").read_text() == index  # resume adds nothing
    simulate_store(tmp_path / "b", "hospital-x", "device-c", 25, 0.4, 0.1, seed=3)
    assert (tmp_path / "b" / "index.jsonl").read_text() == index
    first = records[0]
    assert np.array_equal(Store(tmp_path / "b").load_image(first), store.load_image(first))

    images, masks = store.load_arrays(records[:4], 32)
    assert images.shape == (4, 32, 32) and images.min() >= -1 and images.max() <= 1
    with pytest.raises(DataError, match="malignant_rate"):
        simulate_store(tmp_path / "c", "x", "device-a", 3, 0.8, 0.5)
    with pytest.raises(DataError, match="unknown phantom device"):
        simulate_store(tmp_path / "c", "x", "device-z", 3)


def test_multi_device_store_mixes_devices(tmp_path):
    store = simulate_multi_device_store(
        tmp_path, ["device-a", "device-b", "device-c"], 7, seed=1, image_size=48
    )
    recs = store.records()
    assert {r.device for r in recs} == {"device-a", "device-b", "device-c"}
    assert len({r.patient for r in recs}) == 7
    assert all((r.width, r.height) == (48, 48) for r in recs)
    lines = [json.loads(x) for x in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert len(lines) == len(recs)
