"""The site's privacy ledger (`SiteDir.ledger`): what this site has spent, per patient, forever.

The ledger is a hash-chained, append-only JSONL file (`common.chainlog.ChainLog`; every line is
fsynced, and editing, dropping or reordering lines breaks the chain). It stores exactly what an
accountant needs: blocks of (noise multiplier, sample rate, steps). Epsilon is always recomputed
by the accountant over the WHOLE history, never added up.

Events:
  job-start  a job's plan, written once when its first block is admitted (sigma, q, delta, rounds)
  dp-steps   a block of DP-SGD steps, written BEFORE the block trains (write-ahead): a crash at
             any point leaves a ledger that accounts for every step whose result could leave;
             a crashed block is over-counted, never under-counted
  block-done the block finished and its adapter's hash (informational; accounting ignores it)

Admission (`admit_block`) checks the site policy and the projected epsilon BEFORE anything is
trained; a refused block raises PolicyError and leaves the ledger byte-for-byte unchanged. A file
lock makes check-then-append atomic against a second training process on the same site.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from common.chainlog import ChainLog
from common.errors import PolicyError
from common.files import locked
from common.privacy import Block, PrivacyStatement, SitePolicy, epsilon


@dataclass(frozen=True)
class JobPlan:
    """The fixed DP parameters of one training job (all its rounds)."""

    job_id: str
    noise_multiplier: float
    sample_rate: float
    delta: float
    accountant: str
    rounds: int
    steps_per_round: int
    max_grad_norm: float
    target_epsilon: float
    noise_multiplicity: int = 1
    max_images_per_patient: int = 0
    patients_coarse: int = 0

    @property
    def planned_steps(self) -> int:
        return self.rounds * self.steps_per_round

    def to_fields(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class PrivacyLedger:
    """Read, project and append the privacy history of one site."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.log = ChainLog(self.path)

    # -- reading -----------------------------------------------------------------------------
    def entries(self) -> list[dict]:
        """All entries, chain verified (VerificationError if the file was tampered with)."""
        return self.log.verify()

    def blocks(self, job_id: str | None = None) -> list[dict]:
        return [
            e
            for e in self.entries()
            if e["event"] == "dp-steps" and (job_id is None or e["job_id"] == job_id)
        ]

    def history(self, job_id: str | None = None) -> list[Block]:
        """(noise multiplier, sample rate, steps) of every recorded block, in order."""
        return [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in self.blocks(job_id)]

    def job_plan(self, job_id: str) -> JobPlan | None:
        for e in self.entries():
            if e["event"] == "job-start" and e["job_id"] == job_id:
                return JobPlan(**{k: e[k] for k in JobPlan.__dataclass_fields__})
        return None

    def site_delta(self, entries: list[dict] | None = None) -> float | None:
        """The delta of the site total: the smallest delta any block used (the strictest)."""
        deltas = [e["delta"] for e in (entries or self.entries()) if e["event"] == "dp-steps"]
        return min(deltas) if deltas else None

    def total_epsilon(self, accountant: str = "prv", delta: float | None = None) -> float:
        """Site-wide epsilon, composed by the accountant over every recorded block."""
        delta = delta or self.site_delta()
        return 0.0 if delta is None else epsilon(self.history(), delta, accountant)

    def statement(self, accountant: str = "prv") -> PrivacyStatement | None:
        """The site-total statement (None before any training)."""
        blocks = self.blocks()
        if not blocks:
            return None
        delta = min(b["delta"] for b in blocks)
        history = tuple(self.history())
        last = blocks[-1]
        return PrivacyStatement(
            epsilon=epsilon(history, delta, accountant),
            delta=delta,
            accountant=accountant,
            noise_multiplier=last["noise_multiplier"],
            sample_rate=last["sample_rate"],
            max_grad_norm=last["max_grad_norm"],
            steps=sum(b["steps"] for b in blocks),
            rounds=len(blocks),
            scope="site-total",
            history=history,
        )

    # -- admission ---------------------------------------------------------------------------
    def _locked(self) -> AbstractContextManager[None]:
        """The lock that makes check-then-append atomic across processes of this site."""
        return locked(self.path.with_name(self.path.name + ".lock"))

    def admit_block(
        self, plan: JobPlan, round: int, steps: int, policy: SitePolicy, patients: int
    ) -> dict:
        """Check the policy and the projected epsilons, then record the block (write-ahead).

        Checked before anything trains, under the ledger lock:
        - the job's fixed parameters (patients, delta, noise multiplier, rounds) against the policy;
        - for a new job: its whole plan (all rounds), alone and composed with the site history;
        - for every block: the job so far plus this block, and the site history plus this block.
        Raises PolicyError with the projected numbers; the ledger is then unchanged.
        """
        policy.check_job(
            patients=patients,
            delta=plan.delta,
            noise_multiplier=plan.noise_multiplier,
            rounds=plan.rounds,
        )
        with self._locked():
            entries = self.entries()
            history = [
                (e["noise_multiplier"], e["sample_rate"], e["steps"])
                for e in entries
                if e["event"] == "dp-steps"
            ]
            started = [
                e for e in entries if e["event"] == "job-start" and e["job_id"] == plan.job_id
            ]
            if started:
                recorded = JobPlan(**{k: started[0][k] for k in JobPlan.__dataclass_fields__})
                if recorded != plan:
                    raise PolicyError(
                        f"job {plan.job_id}: its DP parameters changed since it "
                        f"started ({self.path}); start a new job instead"
                    )
            if round < 1 or round > plan.rounds:
                raise PolicyError(
                    f"job {plan.job_id}: round {round} is outside its planned "
                    f"1..{plan.rounds} rounds"
                )
            block: Block = (plan.noise_multiplier, plan.sample_rate, steps)
            job_history = [
                (e["noise_multiplier"], e["sample_rate"], e["steps"])
                for e in entries
                if e["event"] == "dp-steps" and e["job_id"] == plan.job_id
            ]
            site_delta = min(
                [plan.delta] + [e["delta"] for e in entries if e["event"] == "dp-steps"]
            )
            checks = []
            if not started:
                plan_block: Block = (plan.noise_multiplier, plan.sample_rate, plan.planned_steps)
                checks += [
                    (
                        f"this job's plan ({plan.rounds} rounds x {plan.steps_per_round} steps)",
                        [plan_block],
                        plan.delta,
                        policy.max_epsilon_per_job,
                    ),
                    (
                        "the site in total after this job's plan",
                        history + [plan_block],
                        site_delta,
                        policy.max_epsilon_total,
                    ),
                ]
            checks += [
                ("this job", job_history + [block], plan.delta, policy.max_epsilon_per_job),
                ("the site in total", history + [block], site_delta, policy.max_epsilon_total),
            ]
            for what, hist, delta, cap in checks:
                eps = epsilon(hist, delta, plan.accountant)
                if not math.isfinite(eps) or eps > cap * (1 + 1e-9):
                    spent = epsilon(history, site_delta, plan.accountant)
                    raise PolicyError(
                        f"job {plan.job_id} round {round} refused before training: epsilon for "
                        f"{what} would be {eps:.3f} > {cap:g} allowed by the site policy "
                        f"(site has spent {spent:.3f} at delta {site_delta:.1e}, "
                        f"{plan.accountant}; ledger {self.path})"
                    )
            if not started:
                self.log.append("job-start", **plan.to_fields())
            return self.log.append(
                "dp-steps",
                job_id=plan.job_id,
                round=round,
                steps=steps,
                noise_multiplier=plan.noise_multiplier,
                sample_rate=plan.sample_rate,
                delta=plan.delta,
                accountant=plan.accountant,
                max_grad_norm=plan.max_grad_norm,
            )

    def record_done(self, job_id: str, round: int, steps_run: int, adapter_sha256: str) -> dict:
        """Note that a block finished (informational; the write-ahead entry already counts it)."""
        with self._locked():
            return self.log.append(
                "block-done",
                job_id=job_id,
                round=round,
                steps_run=steps_run,
                adapter_sha256=adapter_sha256,
            )

    def summary(self, accountant: str = "prv", policy: SitePolicy | None = None) -> dict:
        """Everything `busgen-site budget --json` prints: enough for anyone to recompute epsilon."""
        entries = self.entries()
        delta = self.site_delta(entries)
        blocks = [e for e in entries if e["event"] == "dp-steps"]
        history = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in blocks]
        total = epsilon(history, delta, accountant) if delta else 0.0
        jobs = {}
        for e in blocks:
            jobs.setdefault(e["job_id"], []).append(
                (e["noise_multiplier"], e["sample_rate"], e["steps"])
            )
        job_eps = {
            j: epsilon(h, next(b["delta"] for b in blocks if b["job_id"] == j), accountant)
            for j, h in jobs.items()
        }
        out = {
            "ledger": str(self.path),
            "unit": "patient",
            "accountant": accountant,
            "delta": delta,
            "total_epsilon": total,
            "total_steps": sum(h[2] for h in history),
            "entries": [
                {
                    k: e[k]
                    for k in (
                        "seq",
                        "time",
                        "job_id",
                        "round",
                        "sample_rate",
                        "noise_multiplier",
                        "steps",
                        "delta",
                        "max_grad_norm",
                    )
                }
                for e in blocks
            ],
            "jobs": job_eps,
        }
        if policy is not None:
            out["policy"] = {k: getattr(policy, k) for k in policy.__dataclass_fields__}
            out["remaining_epsilon_total"] = max(0.0, policy.max_epsilon_total - total)
        return out
