"""Diagnostic metrics for the evidence protocol (and the audit's membership attack): AUC and ROC
points from scikit-learn, sensitivity at fixed specificity, and bootstrap intervals that
resample patients rather than images.

Images of one patient are correlated (several views of the same lesion), so resampling images
would give intervals that are too narrow; the bootstrap here draws whole patients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from common.errors import DataError

CurveMetric = Callable[[np.ndarray, np.ndarray], float]
"""A figure read off a ROC curve: (false-positive rates, true-positive rates) -> value."""


def _check(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise DataError(f"metrics: {labels.size} labels but {scores.size} scores")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("metrics: labels must be 0 (benign) or 1 (malignant)")
    if labels.min(initial=1) == labels.max(initial=0):
        raise DataError("metrics: need both classes among the labels to compute an AUC")
    return labels, scores


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (tied scores count one half), by scikit-learn."""
    labels, scores = _check(labels, scores)
    return float(roc_auc_score(labels, scores))


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0,0) to (1,1).

    Every threshold is kept (scikit-learn's `drop_intermediate=False`): callers read operating
    points off the curve, and a dropped point could be the one that meets their FPR bound.
    """
    labels, scores = _check(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr


def curve_auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by trapezoids (scikit-learn's `auc`, without its input checks)."""
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """Best TPR among the curve's operating points whose FPR is at most `max_fpr`.

    A threshold is a real operating point (no interpolation between ROC points), the way a
    clinician would set it on a validation set or an attacker would pick one.
    """
    ok = np.asarray(fpr) <= max_fpr + 1e-12
    return float(np.asarray(tpr)[ok].max()) if ok.any() else 0.0


def sensitivity_at_specificity(
    labels: Sequence[int], scores: Sequence[float], specificity: float = 0.9
) -> float:
    """Best sensitivity over thresholds whose specificity is at least `specificity`."""
    fpr, tpr = roc_points(labels, scores)
    return tpr_at_fpr(fpr, tpr, 1.0 - specificity)


def bootstrap_ci(
    labels: Sequence[int],
    scores: Sequence[float],
    patients: Sequence[str],
    metrics: Mapping[str, CurveMetric],
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of ROC-curve metrics over bootstrap resamples of whole patients.

    `scores` is [N], or [S,N] for S classifiers (seeds) scored on the same images: then each
    resample's value is the mean of a metric over the S rows, so the interval is that of the
    seed-averaged metric. A resample that happens to contain a single class is drawn again (it
    has no ROC curve); the generator is seeded, so intervals are reproducible. Each resample's
    curve is computed once and every metric is read off it: the curve is the costly part
    (scikit-learn checks its inputs on every call), and there are n_boot x S of them.
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
    values: dict[str, list[float]] = {name: [] for name in metrics}
    drawn = attempts = 0
    while drawn < n_boot:
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
        curves = [roc_points(y, row[idx]) for row in scores]
        for name, metric in metrics.items():
            values[name].append(float(np.mean([metric(fpr, tpr) for fpr, tpr in curves])))
        drawn += 1
    alpha = (1.0 - level) / 2
    out = {}
    for name, vals in values.items():
        lo, hi = np.quantile(vals, [alpha, 1 - alpha])
        out[name] = (float(lo), float(hi))
    return out
