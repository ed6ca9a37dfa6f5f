"""`busgen-site init`: create a site's work directory with its secrets and templates.

Idempotent by design: hospital IT may run it twice, and a second run must never replace a key
(a new node key would lock the site out of the consortium, a new secret would re-pseudonymize
every patient). Missing pieces are created; existing ones are kept and reported.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from pathlib import Path

from client.workdir import SiteDir
from common.errors import DataError
from common.files import atomic_write_bytes
from common.keyfiles import generate_node_key, write_private

SITE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def init_site(site_id: str, workdir: Path) -> dict[str, str]:
    """Create (or complete) the work directory; return {item: "created"|"kept"}."""
    if not SITE_ID_RE.match(site_id):
        raise DataError(f"site id {site_id!r}: use 2-63 lowercase letters, digits or '-'")
    site = SiteDir(workdir)
    if site.site_json.exists() and site.site_id() != site_id:
        raise DataError(
            f"{site.site_json}: this work directory belongs to site "
            f"{site.site_id()!r}, not {site_id!r}"
        )
    for folder in (site.root, site.keys, site.store, site.adapters, site.private, site.flwr_home):
        folder.mkdir(parents=True, exist_ok=True)
    site.keys.chmod(0o700)
    site.private.chmod(0o700)
    done: dict[str, str] = {}

    if not site.site_json.exists():
        record = {"site_id": site_id, "created_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        atomic_write_bytes(site.site_json, json.dumps(record, indent=2).encode())
        done["site.json"] = "created"
    else:
        done["site.json"] = "kept"

    if not site.secret.exists():
        write_private(site.secret, secrets.token_hex(32).encode())
        done["secret.key"] = "created"
    else:
        done["secret.key"] = "kept"

    created = generate_node_key(site.node_key, site.node_public_key)
    done["node key"] = "created" if created else "kept"

    if not site.signing_key.exists():
        from common.release.signing import generate_signing_key

        generate_signing_key(site.signing_key, site.signing_public_key, site.signing_passphrase)
        done["signing key"] = "created"
    else:
        done["signing key"] = "kept"

    if not site.policy.exists():
        from common.privacy.policy import write_default_policy

        write_default_policy(site.policy)
        done["policy.yaml"] = "created"
    else:
        done["policy.yaml"] = "kept"
    return done
