"""Quality metrics: exact FD, KID, precision/recall, density/coverage, offline feature spaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from common.quality import (
    blur_cnn_extractor,
    compare_features,
    density_coverage,
    efflite0_extractor,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    quality_report,
    random_cnn_extractor,
)

torch.set_num_threads(2)


def reference_fd(a, b):
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n,d", [(200, 8), (30, 64)])
def test_frechet_distance_matches_sqrtm_formula(n, d):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n + 7, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(reference_fd(a, b), rel=1e-6, abs=1e-8)


def test_distances_grow_with_the_shift():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 16))
    same, shifted = rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 1.0
    assert frechet_distance(real, same) < 2.0 < 8.0 < frechet_distance(real, shifted)
    assert (
        abs(kernel_inception_distance(real, same)) < 0.01 < kernel_inception_distance(real, shifted)
    )


def test_precision_recall_density_coverage_extremes():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(100, 4))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert density_coverage(real, real)[1] == 1.0
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    assert density_coverage(real, far) == (0.0, 0.0)
    # a generator that only covers half of the real modes: precise but low recall / coverage
    half = real[real[:, 0] > 0] + rng.normal(scale=0.01, size=(int((real[:, 0] > 0).sum()), 4))
    p, r = precision_recall(real, half)
    _, coverage = density_coverage(real, half)
    assert p > 0.9 and r < 0.8 and coverage < 0.8


def test_bootstrap_interval_brackets_the_value():
    rng = np.random.default_rng(3)
    out = compare_features(rng.normal(size=(80, 6)), rng.normal(size=(80, 6)) + 0.5, "X", n_boot=50)
    for key in ("FD_X", "KID_X"):
        lo, hi = out[key]["ci95"]
        assert lo < out[key]["value"] < hi
    assert out["FD_X"]["ci95"][0] > 0.5  # shift of 0.5 in 6 dims: FD about 1.5


def test_random_cnn_is_fixed_by_its_seed():
    images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    a = random_cnn_extractor(seed=0).extract(images)
    b = random_cnn_extractor(seed=0).extract(images)
    c = random_cnn_extractor(seed=1).extract(images)
    assert a.shape == (6, 512) and np.array_equal(a, b) and not np.allclose(a, c)


def test_blur_cnn_sees_what_an_image_shows_not_its_gain_or_number_format():
    images = blobs(np.random.default_rng(6), 6)
    ex = blur_cnn_extractor(grid=4)
    feats = ex.extract(images)
    assert feats.shape == (6, 1024) and np.array_equal(feats, blur_cnn_extractor(4).extract(images))
    unit = images / 255.0  # float images in [0, 1] are the same pictures
    np.testing.assert_allclose(ex.extract(unit), feats, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ex.extract(0.6 * unit + 0.2), feats, rtol=1e-4, atol=1e-4)
    other = np.linalg.norm(feats[1:] - feats[0], axis=1)
    assert other.min() > 100 * 1e-4 * np.linalg.norm(feats[0])  # different blobs stay apart
    # The pooled space (for Fréchet distances) is each channel's mean over the 4x4 grid.
    pooled = blur_cnn_extractor().extract(images)
    assert blur_cnn_extractor().name == "BlurCNN" and pooled.shape == (6, 64)
    np.testing.assert_allclose(pooled, feats.reshape(6, 64, 16).mean(2), rtol=1e-5, atol=1e-6)


def test_efflite0_loads_offline_and_separates_textures():
    ex = efflite0_extractor(input_size=96)
    rng = np.random.default_rng(0)
    noise = (rng.random((4, 48, 48)) * 255).astype(np.uint8)
    stripes = np.tile(((np.arange(48) // 4 % 2) * 255).astype(np.uint8), (4, 48, 1))
    f_noise, f_stripes = ex.extract(noise), ex.extract(stripes)
    assert f_noise.shape == (4, 1280) and np.isfinite(f_noise).all()
    within = np.linalg.norm(f_noise[0] - f_noise[1])
    across = np.linalg.norm(f_noise[0] - f_stripes[0])
    assert across > 2 * within


def blobs(rng, n, size=32):
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        img = rng.normal(140, 15, (size, size))
        cx, cy, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 7)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 30
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_quality_report_puts_real_data_on_the_scale():
    rng = np.random.default_rng(4)
    real = blobs(rng, 80)
    noise = (rng.random((40, 32, 32)) * 255).astype(np.uint8)
    report = quality_report(real, noise, extractors=[random_cnn_extractor(0)], n_boot=20)
    space = report["RandCNN0"]
    assert space["generated"]["n_fake"] == space["real_vs_real"]["n_fake"] == 40
    assert (
        space["generated"]["FD_RandCNN0"]["value"]
        > 5 * space["real_vs_real"]["FD_RandCNN0"]["value"]
    )
    assert space["real_vs_real"]["precision"] > space["generated"]["precision"]
    good = quality_report(
        real, blobs(np.random.default_rng(9), 40), extractors=[random_cnn_extractor(0)], n_boot=20
    )["RandCNN0"]["generated"]
    assert good["FD_RandCNN0"]["value"] < space["generated"]["FD_RandCNN0"]["value"] / 5


def test_kid_interval_covers_its_value_for_identical_distributions():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 16)), rng.normal(size=(40, 16))
    both = compare_features(a, b, "X", n_boot=100)
    lo, hi = both["KID_X"]["ci95"]
    assert lo <= both["KID_X"]["value"] <= hi and lo < 0 < hi
    lo, hi = both["FD_X"]["ci95"]
    assert lo <= both["FD_X"]["value"] <= hi
