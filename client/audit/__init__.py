"""The privacy audit of a synthetic release: DP statement, memorization, membership inference and
PHI scan, with a quality section (distance to the site's real images), reported as JSON plus a
self-contained HTML page (and a site-private page with the closest synthetic/training pairs)."""

from client.audit.audit import AuditResult, run_audit, write_private_report
from client.audit.dp_statement import dp_section, tpr_bound
from client.audit.membership import membership_attack
from client.audit.memorization import audit_memorization, augment
from client.audit.phi import detect_text_small, find_text, phi_scan, scan_png, scan_rows
from client.audit.quality import quality_summary

__all__ = [
    "AuditResult",
    "audit_memorization",
    "augment",
    "detect_text_small",
    "dp_section",
    "find_text",
    "membership_attack",
    "phi_scan",
    "quality_summary",
    "run_audit",
    "scan_png",
    "scan_rows",
    "tpr_bound",
    "write_private_report",
]
