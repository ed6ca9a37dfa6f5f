"""The privacy statement: one data object that reports, audits, release cards and the ledger render.

A claim is only precise with all of its parts: epsilon, delta, the accountant that composed it,
the unit of privacy (a patient: all of a patient's images together), and the mechanism's
parameters (sampling rate, noise multiplier, clipping norm, steps, rounds), so anyone can
recompute epsilon from the statement alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class PrivacyStatement:
    """An (epsilon, delta)-DP guarantee for one job, or for a site's whole history.

    `history` holds the composed blocks (noise multiplier, sample rate, steps); `scope` is "job"
    or "site-total". Every number here is public: the patient count appears only coarsened.
    """

    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    sample_rate: float
    max_grad_norm: float
    steps: int
    rounds: int
    unit: str = "patient"
    scope: str = "job"
    job_id: str = ""
    noise_multiplicity: int = 1
    max_images_per_patient: int = 0
    patients_coarse: int = 0
    history: tuple[tuple[float, float, int], ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["history"] = [list(b) for b in self.history]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PrivacyStatement:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["history"] = tuple(tuple(b) for b in data.get("history", ()))
        return cls(**kwargs)

    def summary(self) -> str:
        """One line for logs and reports."""
        eps = "inf" if self.epsilon == float("inf") else f"{self.epsilon:.2f}"
        return (
            f"({eps}, {self.delta:.1e})-DP per {self.unit} [{self.accountant}], "
            f"{self.scope}: {self.steps} steps in {self.rounds} round(s), "
            f"q={self.sample_rate:.4f}, sigma={self.noise_multiplier:.3f}, "
            f"C={self.max_grad_norm:g}"
        )
