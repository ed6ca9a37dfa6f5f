"""Utility summary of a release: what is in it, and how far it is from the site's real images.

Counts are of synthetic images, so they describe the release, not the site's patients. The
distance is a Frechet distance between Gaussian fits of image features (FD). With the
EfficientNet-Lite0 features of `common.quality` it is FD_EffLite0; without them it falls back to
the fixed-seed random CNN (FD_RandCNN) and says so. Values are not comparable to published FIDs,
and FD is biased at small n, so the summary also gives a real-vs-real split-half baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from scipy import linalg

from client.audit.features import random_cnn_features


def feature_extractor() -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """(metric name, uint8 [N,H,W] -> [N,D] features)."""
    try:
        from common.quality import efflite0_features  # type: ignore[attr-defined]
    except ImportError:
        return "FD_RandCNN", _random_cnn_pooled
    return "FD_EffLite0", lambda u8: np.asarray(efflite0_features(u8), np.float64)


def _random_cnn_pooled(u8: np.ndarray) -> np.ndarray:
    """The random CNN's 64 channels averaged over its 4x4 grid: few enough dimensions for a
    covariance estimate from a few hundred images."""
    feats = random_cnn_features(u8.astype(np.float32) / 255.0)
    return feats.reshape(len(u8), 64, 16).mean(2)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between Gaussian fits of two feature sets [N,D], [M,D]."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eye = np.eye(len(cov_a)) * 1e-6  # keeps sqrtm stable when n < dimensions
    covmean = linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    covmean = np.real(covmean)
    return float(
        ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    )


def utility_summary(
    synthetic: np.ndarray, rows: Sequence[dict], real: np.ndarray, seed: int = 0
) -> dict:
    """Class and device counts, FD to the site's real images, and a split-half real baseline.

    `synthetic`, `real`: uint8 [N,H,W] at one size.
    """
    out: dict = {
        "n_images": int(len(synthetic)),
        "pathology_counts": dict(sorted(Counter(r["pathology"] for r in rows).items())),
        "device_counts": dict(sorted(Counter(str(r["device"]) for r in rows).items())),
    }
    if len(synthetic) < 2 or len(real) < 4:
        out["fd"] = None
        out["fd_note"] = "too few images for a Frechet distance"
        return out
    name, extract = feature_extractor()
    f_syn, f_real = extract(synthetic).astype(np.float64), extract(real).astype(np.float64)
    perm = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    out.update(
        {
            "fd_metric": name,
            "fd": frechet_distance(f_syn, f_real),
            "fd_real_split_half": frechet_distance(f_real[perm[:half]], f_real[perm[half:]]),
            "fd_n": {"synthetic": int(len(synthetic)), "real": int(len(real))},
        }
    )
    return out
