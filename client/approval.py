"""Job approval, default deny: the site runs only app versions its operator approved.

What is approved: the *app hash*, SHA-256 over the code that executes at the site during a
federated job, i.e. every source file of the installed `client` and `common` packages (the
ClientApp, DP training, ledger, policy, model code), listed as (relative path, SHA-256) pairs in
canonical JSON under the format tag `busgen-app-v1`. `busgen-site approve --show-installed`
prints it; the coordinator announces the same value for each busgen-fed version it runs.

Why not Flower's FAB hash: in Flower 1.42 the ClientApp never sees it (the `Context` carries run
id, node id, node and run config only; the FAB hash stays inside the SuperNode), and our FAB is a
`pyproject.toml` without code, so its hash would say nothing about what runs here. Flower's own
FAB verification (`flower-supernode --trusted-entities`) needs a SuperLink that signs FABs, which
the open-source SuperLink does not. The app hash is computed inside the ClientApp from the
files Python actually loads, so it can be checked where the job runs.

Why not the run config: the run config carries only the coordinator's state path; everything a
job may do with the site's data is bounded by the site's own policy and privacy ledger, which
the ClientApp enforces on every round. Binding the approval to the run config would force a
re-approval per job without giving the operator anything to review.

Limit (documented in deploy/README.md): a FAB that ships its own code replaces our ClientApp
and with it this check. Keeping the SuperLink's Control API off the network (fleet-only proxy)
is what stops anybody but the coordinator from submitting FABs.

Records: approvals.json (`SiteDir.approvals`) holds the current state; every approval,
revocation and refusal is also appended to the hash-chained site log, and `require_approved`
accepts a hash only when both agree, so editing approvals.json by hand approves nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from pathlib import Path

from client import site_log
from client.workdir import SiteDir
from common.chainlog import canonical_json
from common.errors import DataError, PolicyError
from common.files import atomic_write_bytes

HASH_FORMAT = "busgen-app-v1"
APP_PACKAGES = ("client", "common")
HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def app_manifest(packages: tuple[str, ...] = APP_PACKAGES) -> list[tuple[str, str]]:
    """(path relative to the package parent, SHA-256) of every file of the installed packages."""
    import importlib

    rows = []
    for name in packages:
        root = Path(importlib.import_module(name).__file__).resolve().parent
        for path in sorted(root.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            rel = path.relative_to(root.parent).as_posix()
            rows.append((rel, hashlib.sha256(path.read_bytes()).hexdigest()))
    return sorted(rows)


def app_hash(manifest: list[tuple[str, str]]) -> str:
    return hashlib.sha256(
        canonical_json({"format": HASH_FORMAT, "files": [list(r) for r in manifest]})
    ).hexdigest()


@functools.lru_cache(maxsize=1)
def installed_app_hash() -> str:
    """The app hash of the busgen-fed code this process runs (cached: files do not change
    under a running ClientApp process)."""
    return app_hash(app_manifest())


def check_hash(value: str) -> str:
    value = value.strip().lower()
    if not HASH_RE.match(value):
        raise DataError(
            f"{value!r} is not an app hash (64 hex digits, as printed by "
            "`busgen-site approve --show-installed`)"
        )
    return value


def load_approvals(site: SiteDir) -> dict[str, dict]:
    """app hash -> {status: approved|revoked, approved_at, approved_by, note, ...}."""
    if not site.approvals.exists():
        return {}
    try:
        data = json.loads(site.approvals.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{site.approvals}: not valid JSON ({exc}); restore it from the "
            "site log (`busgen-site log show`) or re-approve"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("apps"), dict):
        raise DataError(f"{site.approvals}: expected an object with an 'apps' mapping")
    return data["apps"]


def _save(site: SiteDir, apps: dict[str, dict]) -> None:
    body = json.dumps({"format": HASH_FORMAT, "apps": apps}, indent=2, sort_keys=True).encode()
    atomic_write_bytes(site.approvals, body, mode=0o600)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def approve(site: SiteDir, value: str, note: str = "") -> dict:
    """Approve an app hash at this site; recorded in approvals.json and the site log."""
    value = check_hash(value)
    site.site_id()  # refuses a directory that is not a site work dir
    entry = site_log.record(site, "app-approved", app_hash=value, note=note)
    apps = load_approvals(site)
    apps[value] = {
        "status": "approved",
        "approved_at": entry["time"],
        "approved_by": entry["actor"],
        "note": note,
        "log_seq": entry["seq"],
    }
    _save(site, apps)
    return apps[value]


def revoke(site: SiteDir, value: str, note: str = "") -> dict:
    """Withdraw an approval: later jobs of that app version are refused."""
    value = check_hash(value)
    apps = load_approvals(site)
    if value not in apps:
        raise DataError(f"{site.approvals}: app {value} was never approved here")
    entry = site_log.record(site, "app-revoked", app_hash=value, note=note)
    apps[value] |= {
        "status": "revoked",
        "revoked_at": entry["time"],
        "revoked_by": entry["actor"],
        "revoke_note": note,
        "log_seq": entry["seq"],
    }
    _save(site, apps)
    return apps[value]


def _logged_status(site: SiteDir, value: str) -> str | None:
    """The last approval decision for `value` in the verified site log."""
    status = None
    for e in site_log.events(site):
        if e.get("app_hash") == value and e["event"] in ("app-approved", "app-revoked"):
            status = "approved" if e["event"] == "app-approved" else "revoked"
    return status


def is_approved(site: SiteDir, value: str) -> bool:
    value = check_hash(value)
    row = load_approvals(site).get(value)
    return bool(
        row and row.get("status") == "approved" and _logged_status(site, value) == "approved"
    )


def require_approved(site: SiteDir, value: str, run_id: int | None = None) -> None:
    """Raise PolicyError (and log the refusal) unless the operator approved this app hash."""
    value = check_hash(value)
    if is_approved(site, value):
        return
    row = load_approvals(site).get(value)
    reason = (
        "approval revoked"
        if row and row.get("status") == "revoked"
        else "approvals.json and the site log disagree"
        if row
        else "not approved"
    )
    site_log.record(site, "job-refused", app_hash=value, reason=reason, run_id=run_id)
    raise PolicyError(
        f"site {site.site_id()}: refused to run app {value} ({reason}). Review "
        f"this busgen-fed version, then approve it with: busgen-site approve "
        f"--workdir {site.root} {value}"
    )
