"""The privacy audit of a synthetic release: DP statement, memorization, membership inference,
PHI scan and utility, reported as JSON plus a self-contained HTML page (and a site-private page
with the closest synthetic/training pairs)."""

from client.audit.audit import AuditResult, run_audit, write_private_report
from client.audit.dp_statement import dp_section, tpr_bound
from client.audit.membership import membership_attack, roc_curve, tpr_at_fpr
from client.audit.memorization import audit_memorization, augment
from client.audit.phi import detect_text_small, find_text, phi_scan, scan_png, scan_rows
from client.audit.utility import frechet_distance, utility_summary

__all__ = [
    "AuditResult",
    "audit_memorization",
    "augment",
    "detect_text_small",
    "dp_section",
    "find_text",
    "frechet_distance",
    "membership_attack",
    "phi_scan",
    "roc_curve",
    "run_audit",
    "scan_png",
    "scan_rows",
    "tpr_at_fpr",
    "tpr_bound",
    "utility_summary",
    "write_private_report",
]
