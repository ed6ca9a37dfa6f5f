"""Distribution metrics between real and generated feature sets.

- Fréchet distance (FD) between Gaussian fits. The matrix square-root term is computed exactly
  from the centred feature matrices: tr sqrt(S1 S2) = ||A B^T||_* / sqrt((n-1)(m-1)), an SVD of an
  n x m matrix instead of a D x D `sqrtm`, so bootstrapping it is cheap.
- KID: unbiased MMD^2 with the cubic polynomial kernel (Bińkowski et al.); less biased than FD
  at small n.
- Precision / recall (Kynkäänniemi et al., k=3) and density / coverage (Naeem et al., k=5).

FD and KID come with percentile-bootstrap 95% intervals (both sets resampled with replacement).
FD read on a resample is biased upwards (fewer distinct points), so FD's interval is shifted by
that bootstrap bias; KID's resamples skip same-origin pairs and stay unbiased.
"""

from __future__ import annotations

import numpy as np


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [n, D] and [m, D]."""
    n, m = len(real), len(fake)
    a, b = real - real.mean(0), fake - fake.mean(0)
    mean_term = float(np.sum((real.mean(0) - fake.mean(0)) ** 2))
    trace_term = float(np.sum(a * a) / (n - 1) + np.sum(b * b) / (m - 1))
    cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1)))
    return max(mean_term + trace_term - 2.0 * cross, 0.0)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3."""
    d = real.shape[1]
    k_rr = (real @ real.T / d + 1) ** 3
    k_ff = (fake @ fake.T / d + 1) ** 3
    k_rf = (real @ fake.T / d + 1) ** 3
    n, m = len(real), len(fake)
    return float(
        (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
        + (k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
        - 2 * k_rf.mean()
    )


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Fraction of fakes inside the real k-NN manifold, and of reals inside the fake one."""
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = _pairwise(real, fake)  # [n_real, n_fake]
    precision = float(np.mean((d <= r_real[:, None]).any(axis=0)))
    recall = float(np.mean((d <= r_fake[None, :]).any(axis=1)))
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density: how many real k-NN balls hold each fake, / k. Coverage: reals whose ball holds a fake."""
    r_real = _kth_radius(real, k)
    inside = _pairwise(real, fake) <= r_real[:, None]
    density = float(inside.sum() / (k * fake.shape[0]))
    coverage = float(np.mean(inside.any(axis=1)))
    return density, coverage


def _kid_bootstrap(
    real: np.ndarray, fake: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """KID over resamples, skipping pairs that are copies of one original sample.

    A plain resample with replacement puts duplicates in the within-set sums, which inflates
    MMD^2 (the interval would miss the point estimate); excluding same-origin pairs keeps each
    resampled estimate unbiased.
    """
    d = real.shape[1]
    k_rr, k_ff, k_rf = (
        (real @ real.T / d + 1) ** 3,
        (fake @ fake.T / d + 1) ** 3,
        (real @ fake.T / d + 1) ** 3,
    )
    values = []
    for _ in range(n_boot):
        ir, jf = rng.integers(0, len(real), len(real)), rng.integers(0, len(fake), len(fake))
        mr, mf = ir[:, None] != ir[None, :], jf[:, None] != jf[None, :]
        values.append(
            float(
                (k_rr[np.ix_(ir, ir)] * mr).sum() / mr.sum()
                + (k_ff[np.ix_(jf, jf)] * mf).sum() / mf.sum()
                - 2 * k_rf[np.ix_(ir, jf)].mean()
            )
        )
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_interval(
    metric,
    real: np.ndarray,
    fake: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    value: float | None = None,
) -> tuple[float, float]:
    """95% interval of `metric` over resamples (with replacement) of both sets.

    With `value` (the full-sample estimate), the resampled values are first shifted by the
    bootstrap's own bias (their mean minus `value`): FD on a resample sees fewer distinct points
    and reads high, which would otherwise push the whole interval above the estimate.
    """
    values = np.array(
        [
            metric(
                real[rng.integers(0, len(real), len(real))],
                fake[rng.integers(0, len(fake), len(fake))],
            )
            for _ in range(n_boot)
        ]
    )
    if value is not None:
        values = values - (values.mean() - value)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def compare_features(
    real: np.ndarray, fake: np.ndarray, space: str, n_boot: int = 200, seed: int = 0
) -> dict:
    """All metrics for one pair of feature sets, named for the feature space (e.g. FD_EffLite0)."""
    if len(real) < 6 or len(fake) < 6:
        raise ValueError(
            f"quality metrics need at least 6 images per side, got {len(real)} and {len(fake)}"
        )
    rng = np.random.default_rng(seed)
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    fd = frechet_distance(real, fake)
    return {
        f"FD_{space}": {
            "value": fd,
            "ci95": bootstrap_interval(frechet_distance, real, fake, n_boot, rng, value=fd),
        },
        f"KID_{space}": {
            "value": kernel_inception_distance(real, fake),
            "ci95": _kid_bootstrap(real, fake, n_boot, rng),
        },
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        "n_real": len(real),
        "n_fake": len(fake),
    }
