"""The lesion-box prior is differentially private: noisy counts, bounded contribution, no boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import DataError
from common.model import BoxPrior
from common.store import ImageRecord

DEVICES = ("device-a", "device-b")


def records(n_patients=40, boxes_per_image=1, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_patients):
        boxes = []
        for _ in range(boxes_per_image):
            x0, y0 = (int(v) for v in rng.integers(50, 300, 2))
            boxes.append((x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))))
        out.append(
            ImageRecord(
                image_id=f"i{p}",
                patient=f"p{p}",
                pathology=("benign", "malignant")[p % 2],
                device=DEVICES[(p // 2) % 2],
                width=400,
                height=400,
                boxes=tuple(boxes),
            )
        )
    return out


def exact_total(prior: BoxPrior) -> float:
    return sum(float(v.sum()) for v in prior.centre_counts.values())


def test_counts_are_noisy_and_no_training_box_is_stored():
    recs = records()
    prior = BoxPrior.fit(recs, DEVICES, epsilon=1.0, noise_seed=1)
    text = json.dumps(prior.to_json())
    counts = np.concatenate([np.ravel(v) for v in prior.centre_counts.values()])
    assert np.mean(np.abs(counts - np.round(counts)) > 1e-6) > 0.9  # not integer counts
    assert "boxes" not in prior.to_json()
    for rec in recs:
        for box in rec.boxes:
            for form in (list(box), [v / 400 for v in box]):
                assert json.dumps(form)[1:-1] not in text
    again = BoxPrior.fit(recs, DEVICES, epsilon=1.0, noise_seed=2)
    assert not np.allclose(
        prior.centre_counts["benign/device-a"], again.centre_counts["benign/device-a"]
    )


def test_noise_scale_follows_epsilon_and_sensitivity():
    recs = records(boxes_per_image=5)
    exact = BoxPrior.fit(recs, DEVICES, epsilon=1e9, boxes_per_patient=2, noise_seed=0)
    # each patient contributes at most 2 boxes (the contribution bound behind the sensitivity)
    assert exact_total(exact) == pytest.approx(2 * len(recs), abs=1e-3)
    noisy = BoxPrior.fit(recs, DEVICES, epsilon=0.5, boxes_per_patient=2, noise_seed=0)
    diffs = np.concatenate(
        [np.ravel(noisy.centre_counts[k] - exact.centre_counts[k]) for k in exact.centre_counts]
    )
    # Laplace scale b = 2 * 2 / 0.5 = 8, so mean |noise| = 8
    assert 5 < np.mean(np.abs(diffs)) < 11
    meta = noisy.to_json()
    assert meta["epsilon"] == 0.5 and meta["l1_sensitivity"] == 4 and meta["unit"] == "patient"


def test_sampling_follows_the_histogram_and_stays_in_the_image(tmp_path):
    recs = [
        ImageRecord(
            image_id=f"i{p}",
            patient=f"p{p}",
            pathology="benign",
            device="device-a",
            width=100,
            height=100,
            boxes=((5, 5, 15, 15),),
        )
        for p in range(200)
    ]
    prior = BoxPrior.fit(recs, DEVICES, epsilon=10.0, noise_seed=0)
    prior.save(tmp_path / "prior.json")
    loaded = BoxPrior.load(tmp_path / "prior.json")
    boxes = np.array(loaded.sample("benign", "device-a", 200, np.random.default_rng(0)))
    assert boxes.min() >= 0 and boxes.max() <= 1
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.mean(np.all(centres < 1 / 6 + 0.1, axis=1)) > 0.8  # mostly the top-left cell
    flat = BoxPrior.uniform(DEVICES).sample("malignant", None, 200, np.random.default_rng(0))
    assert np.std([b[0] for b in flat]) > 0.15
    with pytest.raises(DataError):
        loaded.sample("normal", "device-a", 1, np.random.default_rng(0))
    with pytest.raises(DataError):
        BoxPrior.fit(recs, DEVICES, epsilon=0)
