"""Evidence metrics: checked against their definitions, and the bootstrap's behaviour."""

import numpy as np
import pytest

from common.errors import DataError
from common.evidence.metrics import (
    auc,
    bootstrap_ci,
    curve_auc,
    roc_points,
    sensitivity_at_specificity,
    tpr_at_fpr,
)

AUC = {"auc": curve_auc}


def _pairwise_auc(y, s) -> float:
    """The Mann-Whitney definition: P(positive scores above negative), ties count one half."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def _brute_sensitivity(y, s, specificity) -> float:
    """Try every threshold "score >= t": the best sensitivity whose specificity is enough."""
    best = 0.0
    for t in np.r_[np.unique(s), np.inf]:
        if np.mean(s[y == 0] < t) >= specificity - 1e-12:
            best = max(best, float(np.mean(s[y == 1] >= t)))
    return best


def _data(seed, n_patients, shift=1.0):
    """One image per patient: labels, scores (positives shifted up), patient ids."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_patients)
    y[:2] = [0, 1]
    return y, rng.normal(size=n_patients) + shift * y, np.arange(n_patients)


@pytest.mark.parametrize("seed", range(3))
def test_auc_is_the_mann_whitney_probability_with_and_without_ties(seed):
    y, s, _ = _data(seed, 200)
    tied = np.round(s * 2) / 2  # many ties, including across classes
    for scores in (s, tied):
        assert auc(y, scores) == pytest.approx(_pairwise_auc(y, scores), abs=1e-12)
        # The bootstrap reads AUC off the ROC curve: it must agree with the point estimate.
        assert curve_auc(*roc_points(y, scores)) == pytest.approx(auc(y, scores), abs=1e-12)


def test_auc_extremes_and_constant_scores():
    y = np.array([0, 0, 1, 1])
    assert auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc(y, [0.5] * 4) == 0.5


def test_roc_points_keep_every_threshold_and_sensitivity_matches_its_definition():
    y, s, _ = _data(1, 300, shift=1.5)
    s = np.round(s, 1)
    fpr, tpr = roc_points(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert len(fpr) == len(np.unique(s)) + 1  # no point dropped: each is an operating point
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    for spec in (0.8, 0.9, 0.95):
        assert sensitivity_at_specificity(y, s, spec) == pytest.approx(
            _brute_sensitivity(y, s, spec)
        )


def test_tpr_at_low_fpr_reads_real_operating_points():
    # Members score 3, 2, 0.5; non-members 1, 0: two of three members sit above every non-member.
    y, s = np.array([1, 1, 1, 0, 0]), np.array([3.0, 2.0, 0.5, 1.0, 0.0])
    fpr, tpr = roc_points(y, s)
    assert tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(2 / 3)
    assert tpr_at_fpr(fpr, tpr, 0.5) == 1.0
    fpr, tpr = roc_points(np.r_[np.ones(5), np.zeros(5)], np.zeros(10))  # no signal
    assert tpr_at_fpr(fpr, tpr, 0.5) == 0.0  # no threshold between "nobody" and "everybody"


def test_interval_covers_the_estimate_and_narrows_with_more_patients():
    widths = []
    for n_patients in (40, 400):
        y, s, patients = _data(2, n_patients)
        lo, hi = bootstrap_ci(y, s, patients, AUC, 300, 0)["auc"]
        assert lo < auc(y, s) < hi
        widths.append(hi - lo)
    # The width shrinks like 1/sqrt(patients): about 3.2x for 10x the patients.
    assert widths[1] < 0.5 * widths[0]


def test_resampling_draws_whole_patients():
    y, s, patients = _data(3, 40)
    # Every patient seen 5 times, identically: drawing patients gives the same resamples (and
    # AUCs) as the single copies; drawing images would pretend there are 200 patients.
    yy, ss, pp = (np.repeat(a, 5) for a in (y, s, patients))
    by_patient = bootstrap_ci(yy, ss, pp, AUC, 300, 0)["auc"]
    assert by_patient == pytest.approx(bootstrap_ci(y, s, patients, AUC, 300, 0)["auc"])
    by_image = bootstrap_ci(yy, ss, np.arange(len(yy)), AUC, 300, 0)["auc"]
    assert by_patient[1] - by_patient[0] > 1.5 * (by_image[1] - by_image[0])


def test_several_metrics_share_resamples_and_seed_rows_are_averaged():
    y, s, patients = _data(4, 60)
    rng = np.random.default_rng(0)
    other = s + rng.normal(scale=2.0, size=s.shape)  # a worse classifier (another seed)
    sens = {"sens": lambda f, t: tpr_at_fpr(f, t, 0.1)}
    both = bootstrap_ci(y, s, patients, {**AUC, **sens}, 200, 1)
    assert both["auc"] == bootstrap_ci(y, s, patients, AUC, 200, 1)["auc"]
    assert both["sens"] == bootstrap_ci(y, s, patients, sens, 200, 1)["sens"]
    assert bootstrap_ci(y, np.stack([s, s]), patients, AUC, 200, 1) == {"auc": both["auc"]}
    lo_mix, hi_mix = bootstrap_ci(y, np.stack([s, other]), patients, AUC, 200, 1)["auc"]
    lo_worse, hi_worse = bootstrap_ci(y, other, patients, AUC, 200, 1)["auc"]
    assert lo_worse < lo_mix < both["auc"][0] and hi_worse < hi_mix < both["auc"][1]


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="both classes"):
        bootstrap_ci([0, 0, 0], [0.1, 0.2, 0.3], ["a", "b", "c"], AUC, 10, 0)
    with pytest.raises(DataError, match="2 labels but 3 scores"):
        auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="0 \\(benign\\) or 1"):
        roc_points([0, 2], [0.1, 0.2])
    with pytest.raises(DataError, match="patient ids"):
        bootstrap_ci([0, 1], [0.1, 0.2], ["a"], AUC, 10, 0)
