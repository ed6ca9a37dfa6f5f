"""The evidence classifier: learns, is deterministic for a seed, rejects unusable input."""

import numpy as np
import pytest
import torch

from common.errors import DataError
from common.evidence.classifier import (
    augment_batch,
    build_classifier,
    predict_scores,
    train_classifier,
)


def _lesions(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Dark round (benign) vs strongly lobulated (malignant) blobs in noisy tissue."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:size, :size]
    images = (-0.5 + rng.normal(0, 0.15, (n, size, size))).astype(np.float32)
    for i in range(n):
        cx, cy = rng.uniform(size * 0.35, size * 0.65, 2)
        rr = np.hypot(xx - cx, yy - cy)
        if labels[i]:
            rr = rr * (1 + 0.6 * np.sin(5 * np.arctan2(yy - cy, xx - cx)))
        images[i][rr < rng.uniform(size * 0.15, size * 0.25)] = -0.95
    return images.clip(-1, 1), labels


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return _lesions(160, 0), _lesions(80, 1)


def test_learns_a_separable_task(data):
    (x, y), (xt, yt) = data
    model = train_classifier(x, y, epochs=12, seed=3, image_size=32)
    scores = predict_scores(model, xt)
    assert scores.shape == (len(xt),) and scores.dtype == np.float64
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(yt, scores) > 0.8
    # the scores are probabilities of malignancy, not just a ranking: 0.5 is a usable cut
    assert np.mean((scores > 0.5) == yt) > 0.85


def test_same_seed_same_scores(data):
    (x, y), (xt, _) = data
    runs = [
        predict_scores(train_classifier(x[:48], y[:48], epochs=2, seed=s, image_size=32), xt)
        for s in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_resizes_inputs_to_its_own_size(data):
    (x, y), _ = data
    model = train_classifier(x[:40], y[:40], epochs=1, seed=0, image_size=16)
    big = np.repeat(np.repeat(x[:5], 2, axis=1), 2, axis=2)
    # Bilinear downsampling of a 2x-enlarged image to 16 px samples the same pixel pairs as
    # downsampling the original: resized inside, both must score identically.
    np.testing.assert_allclose(predict_scores(model, big), predict_scores(model, x[:5]), atol=1e-6)


def test_device_augmentation_keeps_range_and_changes_appearance(data):
    (x, _), _ = data
    batch = torch.from_numpy(x[:8]).unsqueeze(1)
    out = augment_batch(batch, torch.Generator().manual_seed(0), device_style=True)
    assert out.shape == batch.shape
    assert out.min() >= -1 and out.max() <= 1
    assert (out - batch).abs().mean() > 0.02


def test_rejects_one_class_and_bad_shapes():
    x = np.zeros((4, 32, 32), np.float32)
    with pytest.raises(DataError, match="both benign"):
        train_classifier(x, np.zeros(4), epochs=1, seed=0, image_size=32)
    with pytest.raises(DataError, match="labels"):
        train_classifier(x, np.array([0, 1]), epochs=1, seed=0, image_size=32)
    with pytest.raises(DataError, match=r"\[N,H,W\]"):
        predict_scores(build_classifier(32), np.zeros((2, 1, 32, 32)))
