"""Differential privacy shared by site and coordinator: accounting, statements, site policy."""

from common.privacy.accounting import (
    ACCOUNTANTS,
    Block,
    calibrate_noise,
    compact,
    default_delta,
    epsilon,
    public_patient_count,
    sample_rate,
)
from common.privacy.policy import SitePolicy, load_policy, write_default_policy
from common.privacy.statement import PrivacyStatement

__all__ = [
    "ACCOUNTANTS",
    "Block",
    "PrivacyStatement",
    "SitePolicy",
    "calibrate_noise",
    "compact",
    "default_delta",
    "epsilon",
    "load_policy",
    "public_patient_count",
    "sample_rate",
    "write_default_policy",
]
