"""The privacy ledger: recomputed epsilon, refusals before training, tamper evidence."""

import pytest
from dp_accounting import dp_event, pld, rdp

from client.ledger import JobPlan, PrivacyLedger
from common.errors import PolicyError, VerificationError
from common.privacy import SitePolicy, epsilon

POLICY = SitePolicy(
    max_epsilon_per_job=20,
    max_epsilon_total=30,
    max_delta=1e-2,
    min_patients=10,
    min_noise_multiplier=0.5,
    max_rounds=10,
)


def plan(job_id, sigma, q, rounds, steps, delta=1e-4, accountant="prv"):
    return JobPlan(
        job_id=job_id,
        noise_multiplier=sigma,
        sample_rate=q,
        delta=delta,
        accountant=accountant,
        rounds=rounds,
        steps_per_round=steps,
        max_grad_norm=1.0,
        target_epsilon=8.0,
        patients_coarse=50,
    )


def rdp_plan(*args):
    return plan(*args, accountant="rdp")  # RDP is fast; the PRV accountant is compared below


def independent_epsilon(history, delta, kind):
    """Google's dp_accounting, composing the same Poisson-subsampled Gaussian blocks."""
    event = dp_event.ComposedDpEvent(
        [
            dp_event.SelfComposedDpEvent(
                dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps
            )
            for sigma, q, steps in history
        ]
    )
    acc = rdp.RdpAccountant() if kind == "rdp" else pld.PLDAccountant()
    acc.compose(event)
    return acc.get_epsilon(delta)


def test_ledger_epsilon_matches_dp_accounting_within_one_percent(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    # admission checks use the plan's (fast) RDP accountant; totals are asked for both kinds
    job_a, job_b = rdp_plan("a", 1.2, 0.1, 3, 20), rdp_plan("b", 1.6, 0.2, 1, 30)
    ledger.admit_block(job_a, 1, 20, POLICY, patients=50)
    ledger.admit_block(job_b, 1, 30, POLICY, patients=50)  # another job in between
    ledger.admit_block(job_a, 2, 20, POLICY, patients=50)
    history = [(1.2, 0.1, 20), (1.6, 0.2, 30), (1.2, 0.1, 20)]
    assert ledger.history() == history
    for accountant, kind in (("rdp", "rdp"), ("prv", "pld")):
        ours = ledger.total_epsilon(accountant)
        theirs = independent_epsilon(history, 1e-4, kind)
        assert ours == pytest.approx(theirs, rel=0.01), (accountant, ours, theirs)
    # composition, not addition
    per_block = sum(epsilon([b], 1e-4, "rdp") for b in history)
    assert ledger.total_epsilon("rdp") < per_block
    summary = ledger.summary("rdp", POLICY)
    assert [e["steps"] for e in summary["entries"]] == [20, 30, 20]
    assert summary["total_steps"] == 70 and summary["delta"] == 1e-4
    assert set(summary["jobs"]) == {"a", "b"}


def test_over_budget_job_is_refused_and_ledger_unchanged(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    ledger.admit_block(rdp_plan("a", 1.0, 0.2, 1, 40), 1, 40, POLICY, patients=50)
    before = ledger.path.read_bytes()
    spent = ledger.total_epsilon("rdp")
    tight = SitePolicy(max_epsilon_per_job=20, max_epsilon_total=spent + 0.5, min_patients=10)
    with pytest.raises(PolicyError, match="site in total after this job's plan"):
        ledger.admit_block(rdp_plan("b", 1.0, 0.2, 2, 40), 1, 40, tight, patients=50)
    # a job whose whole plan exceeds the per-job cap is refused at its first round
    with pytest.raises(PolicyError, match="this job's plan"):
        ledger.admit_block(
            rdp_plan("c", 1.0, 0.2, 10, 5),
            1,
            5,
            SitePolicy(max_epsilon_per_job=5, max_epsilon_total=100, min_patients=10),
            patients=50,
        )
    with pytest.raises(PolicyError, match="min_patients"):
        ledger.admit_block(rdp_plan("d", 1.0, 0.2, 1, 1), 1, 1, POLICY, patients=5)
    with pytest.raises(PolicyError, match="round 4"):
        ledger.admit_block(rdp_plan("a", 1.0, 0.2, 1, 40), 4, 40, POLICY, patients=50)
    with pytest.raises(PolicyError, match="changed"):
        ledger.admit_block(rdp_plan("a", 2.0, 0.2, 1, 40), 1, 40, POLICY, patients=50)
    assert ledger.path.read_bytes() == before


def test_tampering_is_detected(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    ledger.admit_block(rdp_plan("a", 1.0, 0.2, 2, 40), 1, 40, POLICY, patients=50)
    text = ledger.path.read_text().replace('"steps": 40', '"steps": 4')
    ledger.path.write_text(text)
    with pytest.raises(VerificationError):
        ledger.total_epsilon("rdp")
    with pytest.raises(VerificationError):
        ledger.admit_block(rdp_plan("a", 1.0, 0.2, 2, 40), 2, 40, POLICY, patients=50)
