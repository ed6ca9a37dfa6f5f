"""The site's tamper-evident event log (`SiteDir.log`): one helper so every event looks alike.

Hospital IT and the data protection officer read this log to answer "what ran here, on which
data, and what left the site". It is a hash-chained JSON-lines file (common.chainlog), so an
edited, removed or reordered line is found by `busgen-site log verify`.

Every entry carries the site id and the operating-system user that caused it, plus the fields
its event requires (EVENTS). Callers use `record` or one of the small helpers below:

    ingest / de-identification   record_ingest(site, source=..., accepted=..., quarantined=...)
    a DP training block          record_training(site, job_id, round, statement)
    a signed release             record_release(site, bundle_dir, manifest_sha256)
    approvals and refusals       client.approval (app-approved, app-revoked, job-refused)

Entries hold counts, hashes and privacy parameters only: never patient identifiers or paths
inside the de-identification private area.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from client.workdir import SiteDir
from common.chainlog import ChainLog
from common.errors import DataError

# event name -> fields it must carry (more may be given)
EVENTS: dict[str, tuple[str, ...]] = {
    "ingest": ("source", "accepted", "quarantined"),
    "training-block": ("job_id", "round", "epsilon", "delta", "accountant", "unit"),
    "release": ("bundle", "manifest_sha256"),
    "app-approved": ("app_hash",),
    "app-revoked": ("app_hash",),
    "job-refused": ("app_hash", "reason"),
}


def _actor() -> str:
    """Who caused the event: the OS user (a container may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def record(site: SiteDir, event: str, **fields: Any) -> dict:
    """Append one event to the site log; returns the written entry."""
    if event not in EVENTS:
        raise DataError(
            f"{site.log}: unknown site event {event!r} (known: {', '.join(sorted(EVENTS))})"
        )
    missing = [f for f in EVENTS[event] if f not in fields]
    if missing:
        raise DataError(f"{site.log}: event {event!r} needs field(s) {', '.join(missing)}")
    site_id = site.site_id() if site.site_json.exists() else None
    return ChainLog(site.log).append(event, site_id=site_id, actor=_actor(), **fields)


def events(site: SiteDir, event: str | None = None) -> list[dict]:
    """The verified entries of the site log, optionally only one event type."""
    entries = ChainLog(site.log).verify()
    return [e for e in entries if event is None or e["event"] == event]


def record_ingest(
    site: SiteDir, source: str, accepted: int, quarantined: int, **extra: Any
) -> dict:
    """An ingest or de-identification run: where from (a label, not PHI) and the counts."""
    return record(
        site, "ingest", source=source, accepted=int(accepted), quarantined=int(quarantined), **extra
    )


def record_training(site: SiteDir, job_id: str, round: int, statement: Any, **extra: Any) -> dict:
    """One DP training block with its privacy statement (epsilon so far, delta, accountant).

    `statement` is a common.privacy PrivacyStatement (anything with `to_dict()`) or a dict.
    """
    st = statement.to_dict() if hasattr(statement, "to_dict") else dict(statement)
    return record(
        site,
        "training-block",
        job_id=job_id,
        round=int(round),
        epsilon=float(st["epsilon"]),
        delta=float(st["delta"]),
        accountant=st.get("accountant"),
        unit=st.get("unit", "patient"),
        statement=st,
        **extra,
    )


def record_release(site: SiteDir, bundle_dir: Path, manifest_sha256: str, **extra: Any) -> dict:
    """A signed release bundle that may now leave the site."""
    return record(
        site, "release", bundle=str(Path(bundle_dir)), manifest_sha256=manifest_sha256, **extra
    )
