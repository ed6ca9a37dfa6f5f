"""Evidence metrics against scikit-learn and against a direct patient-bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from common.errors import DataError
from common.evidence.metrics import auc, bootstrap_ci, roc_points, sensitivity_at_specificity


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    y[:2] = [0, 1]
    continuous = rng.normal(size=200) + y
    tied = np.round(continuous * 2) / 2  # many ties, including across classes
    for scores in (continuous, tied):
        assert auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_extremes_and_constant_scores():
    y = np.array([0, 0, 1, 1])
    assert auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc(y, [0.5] * 4) == 0.5


def test_roc_points_and_sensitivity_at_specificity_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + 1.5 * y, 1)
    fpr, tpr = roc_points(y, s)
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    for spec in (0.8, 0.9, 0.95):
        expected = ref_tpr[ref_fpr <= 1 - spec + 1e-12].max()
        assert sensitivity_at_specificity(y, s, spec) == pytest.approx(expected)


def _reference_bootstrap(y, s, patients, n_boot, seed):
    """The same resampling written the obvious way, with scikit-learn computing each AUC."""
    ids = sorted(set(patients))
    rng = np.random.default_rng(seed)
    values = []
    while len(values) < n_boot:
        pick = rng.integers(0, len(ids), len(ids))
        idx = [i for k in pick for i in range(len(y)) if patients[i] == ids[k]]
        if len(set(y[idx])) < 2:
            continue
        values.append(roc_auc_score(y[idx], s[idx]))
    return np.quantile(values, [0.025, 0.975])


def test_bootstrap_matches_a_direct_patient_resampling_with_sklearn():
    rng = np.random.default_rng(2)
    n_pat = 30
    per = rng.integers(1, 4, n_pat)
    patients = np.repeat([f"p{i:02d}" for i in range(n_pat)], per)
    y = np.repeat(rng.integers(0, 2, n_pat), per)
    s = rng.normal(size=len(y)) + y
    lo, hi = bootstrap_ci(y, s, patients, auc, n_boot=200, seed=7)
    ref = _reference_bootstrap(y, s, patients, 200, 7)
    assert (lo, hi) == pytest.approx(tuple(ref), abs=1e-12)
    assert lo < auc(y, s) < hi


def test_patient_bootstrap_is_wider_when_images_repeat_within_patients():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    s = rng.normal(size=40) + y
    # Each patient seen 5 times: image-level resampling would pretend there are 200 patients.
    yy, ss = np.repeat(y, 5), np.repeat(s, 5)
    by_patient = bootstrap_ci(yy, ss, np.repeat(np.arange(40), 5), auc, 300, 0)
    by_image = bootstrap_ci(yy, ss, np.arange(200), auc, 300, 0)
    assert by_patient[1] - by_patient[0] > 1.5 * (by_image[1] - by_image[0])


def test_seed_matrix_bootstrap_averages_rows():
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    s = rng.normal(size=40) + y
    same = bootstrap_ci(y, np.stack([s, s]), np.arange(40), auc, 100, 1)
    assert same == bootstrap_ci(y, s, np.arange(40), auc, 100, 1)


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="2 labels but 3 scores"):
        auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="patient ids"):
        bootstrap_ci([0, 1], [0.1, 0.2], ["a"], auc, 10, 0)
