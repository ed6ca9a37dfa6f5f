"""Accounting wrapper, noise calibration, statements and the site policy schema."""

import pytest

from common.errors import ConfigError, PolicyError
from common.privacy import (
    PrivacyStatement,
    SitePolicy,
    calibrate_noise,
    compact,
    default_delta,
    epsilon,
    load_policy,
    public_patient_count,
    sample_rate,
    write_default_policy,
)


def test_calibrated_noise_reaches_target_from_below():
    sigmas = {}
    for accountant in ("rdp", "prv"):
        sigmas[accountant] = calibrate_noise(4.0, 1e-4, 0.1, 30, accountant)
        eps = epsilon([(sigmas[accountant], 0.1, 30)], 1e-4, accountant)
        assert 0.98 * 4.0 <= eps <= 4.0, (accountant, sigmas, eps)
    # PRV is tighter than RDP, so it needs less noise for the same target.
    assert sigmas["prv"] < sigmas["rdp"]


def test_epsilon_composes_instead_of_adding():
    one = epsilon([(1.5, 0.1, 50)], 1e-4, "rdp")
    two = epsilon([(1.5, 0.1, 50), (1.5, 0.1, 50)], 1e-4, "rdp")
    assert one < two < 2 * one
    assert epsilon([], 1e-4) == 0.0
    assert compact([(1.5, 0.1, 50), (1.5, 0.1, 50), (2.0, 0.1, 0)]) == [(1.5, 0.1, 100)]


def test_public_counts_hide_exact_patient_numbers_and_delta_stays_below_one_over_n():
    assert public_patient_count(47) == public_patient_count(40) == 40
    assert public_patient_count(3) == 10
    for n in (10, 11, 19, 47, 500):
        assert default_delta(n) < 1 / n
    assert sample_rate(8, 47) == pytest.approx(8 / 40)
    with pytest.raises(PolicyError):
        public_patient_count(0)


def test_statement_round_trip():
    s = PrivacyStatement(
        epsilon=3.2,
        delta=1e-5,
        accountant="prv",
        noise_multiplier=1.1,
        sample_rate=0.05,
        max_grad_norm=1.0,
        steps=100,
        rounds=2,
        history=((1.1, 0.05, 50), (1.1, 0.05, 50)),
    )
    assert PrivacyStatement.from_dict(s.to_dict()) == s
    assert s.unit == "patient" and "per patient" in s.summary()


def test_policy_round_trip_and_strict_validation(tmp_path):
    path = tmp_path / "policy.yaml"
    assert write_default_policy(path) == load_policy(path) == SitePolicy()
    with pytest.raises(ConfigError, match="already exists"):
        write_default_policy(path)
    path.write_text("max_epsilon_total: 4\nmax_epsilon_per_jb: 2\n")
    with pytest.raises(ConfigError, match="max_epsilon_per_jb"):
        load_policy(path)
    path.write_text("min_patients: 2.5\n")
    with pytest.raises(ConfigError, match="min_patients"):
        load_policy(path)
    path.write_text("max_epsilon_total: -1\n")
    with pytest.raises(ConfigError, match="positive"):
        load_policy(path)
    with pytest.raises(ConfigError, match="no site policy"):
        load_policy(tmp_path / "missing.yaml")


def test_policy_job_checks_name_every_problem():
    policy = SitePolicy(min_patients=20, min_noise_multiplier=0.8, max_rounds=5, max_delta=1e-3)
    policy.check_job(patients=30, delta=1e-4, noise_multiplier=1.0, rounds=5)
    with pytest.raises(PolicyError) as err:
        policy.check_job(patients=10, delta=0.2, noise_multiplier=0.5, rounds=9)
    for word in ("min_patients", "max_delta", "1/patients", "min_noise_multiplier", "max_rounds"):
        assert word in str(err.value)
