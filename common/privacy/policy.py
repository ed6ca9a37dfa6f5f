"""The site's privacy policy (`SiteDir.policy`, YAML). Only the site edits it.

The policy is the site's hard limits, checked before any training starts: a job that would
break one of them is refused with a `PolicyError` and nothing is trained or recorded. The
coordinator cannot change it; the federation configuration only asks, the site decides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.errors import ConfigError, PolicyError
from common.files import atomic_write_bytes


@dataclass(frozen=True)
class SitePolicy:
    """Hard privacy limits of one site (unit: patient)."""

    max_epsilon_per_job: float = 8.0
    max_epsilon_total: float = 16.0
    max_delta: float = 1.0e-2
    min_patients: int = 20
    min_noise_multiplier: float = 0.5
    max_rounds: int = 50

    def check_job(
        self, *, patients: int, delta: float, noise_multiplier: float, rounds: int
    ) -> None:
        """Refuse a job whose fixed parameters break the policy (epsilon is checked by the ledger)."""
        problems = []
        if patients < self.min_patients:
            problems.append(f"{patients} training patients < min_patients {self.min_patients}")
        if delta > self.max_delta:
            problems.append(f"delta {delta:.2e} > max_delta {self.max_delta:.2e}")
        if delta >= 1.0 / patients:
            problems.append(f"delta {delta:.2e} is not below 1/patients = {1.0 / patients:.2e}")
        if noise_multiplier < self.min_noise_multiplier:
            problems.append(
                f"noise multiplier {noise_multiplier:.3f} < min_noise_multiplier "
                f"{self.min_noise_multiplier} (ask for a smaller epsilon or fewer steps)"
            )
        if rounds > self.max_rounds:
            problems.append(f"{rounds} rounds > max_rounds {self.max_rounds}")
        if problems:
            raise PolicyError("job refused by the site policy: " + "; ".join(problems))


_HEADER = """\
# Site privacy policy (busgen-fed). Only this site edits this file; the coordinator cannot.
# Unit of privacy: the patient. Epsilons are composed by the accountant over the whole ledger.
#   max_epsilon_per_job   largest epsilon one training job (all its rounds) may spend
#   max_epsilon_total     largest epsilon all jobs together may spend (hard stop)
#   max_delta             largest delta accepted (delta is also always below 1/patients)
#   min_patients          refuse to train on fewer training patients
#   min_noise_multiplier  refuse DP-SGD with less noise than this
#   max_rounds            refuse federated jobs with more rounds
"""


def write_default_policy(path: Path, overwrite: bool = False) -> SitePolicy:
    """Write the default policy (atomically); never replaces an existing one unless asked."""
    path = Path(path)
    policy = SitePolicy()
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: a policy already exists; edit it instead")
    body = yaml.safe_dump(dataclasses.asdict(policy), sort_keys=False)
    atomic_write_bytes(path, (_HEADER + body).encode())
    return policy


def load_policy(path: Path) -> SitePolicy:
    """Read and strictly validate a policy file (unknown keys and wrong types are errors)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"{path}: no site policy; run `busgen-site init` or write one with "
            "common.privacy.policy.write_default_policy"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    kwargs = {}
    types = {f.name: f.type for f in dataclasses.fields(SitePolicy)}
    for key, value in data.items():
        if key not in types:
            raise ConfigError(f"{path}: unknown key '{key}' (allowed: {', '.join(types)})")
        want = float if types[key] in (float, "float") else int
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (want is int and not isinstance(value, int))
        ):
            raise ConfigError(f"{path}: '{key}' must be a {want.__name__}, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{path}: '{key}' must be positive, got {value!r}")
        kwargs[key] = want(value)
    if kwargs.get("max_delta", SitePolicy.max_delta) >= 1:
        raise ConfigError(f"{path}: 'max_delta' must be below 1")
    return SitePolicy(**kwargs)
