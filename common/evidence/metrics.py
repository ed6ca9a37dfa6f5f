"""Diagnostic metrics for the evidence protocol: AUC, sensitivity at fixed specificity, ROC
points, and bootstrap intervals that resample patients rather than images.

Images of one patient are correlated (several views of the same lesion), so resampling images
would give intervals that are too narrow; the bootstrap here draws whole patients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from common.errors import DataError


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise DataError(f"metrics: {labels.size} labels but {scores.size} scores")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("metrics: labels must be 0 (benign) or 1 (malignant)")
    if labels.min(initial=1) == labels.max(initial=0):
        raise DataError("metrics: need both classes among the labels to compute an AUC")
    return labels, scores


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks where tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Start index of each run of equal values, and the run each element belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve via the Mann-Whitney statistic (ties count one half)."""
    labels, scores = _check(np.asarray(labels), np.asarray(scores))
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    rank_sum = _midranks(scores)[labels == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0,0) to (1,1)."""
    labels, scores = _check(np.asarray(labels), np.asarray(scores))
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(1 - y)[last_of_tie]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def sensitivity_at_specificity(
    labels: Sequence[int], scores: Sequence[float], specificity: float = 0.9
) -> float:
    """Best sensitivity over thresholds whose specificity is at least `specificity`.

    A threshold is a real operating point (no interpolation between ROC points), the way a
    clinician would set it on a validation set.
    """
    fpr, tpr = roc_points(labels, scores)
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max())


def bootstrap_ci(
    labels: Sequence[int],
    scores: Sequence[float],
    patients: Sequence[str],
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of `metric` over bootstrap resamples of whole patients.

    `scores` is [N], or [S,N] for S classifiers (seeds) scored on the same images: then each
    resample's value is the mean of `metric` over the S rows, so the interval is that of the
    seed-averaged metric. A resample that happens to contain a single class is drawn again (it
    has no AUC); the generator is seeded, so intervals are reproducible.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = np.asarray(labels)
    for row in scores:
        _check(labels, row)
    labels = labels.astype(int)
    patients = np.asarray(patients)
    if patients.shape != labels.shape:
        raise DataError(f"bootstrap: {patients.size} patient ids but {labels.size} labels")
    uniq, inverse = np.unique(patients, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    values: list[float] = []
    attempts = 0
    while len(values) < n_boot:
        attempts += 1
        if attempts > 20 * n_boot + 100:
            raise DataError(
                "bootstrap: resamples keep containing a single class; "
                "the test set has too few patients of one class"
            )
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[k] for k in pick])
        y = labels[idx]
        if y.min() == y.max():
            continue
        values.append(float(np.mean([metric(y, row[idx]) for row in scores])))
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)
