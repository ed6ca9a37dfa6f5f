"""The layout of a site's work directory: one place that names every file a site keeps.

SITE_DIR/
  site.json            site id and creation record (written by `busgen-site init`)
  secret.key           HMAC secret for pseudonyms and UIDs (0600, never leaves the site)
  keys/                node key (SuperNode auth), signing key (encrypted), CA certificate
  policy.yaml          the site's privacy policy; only the site edits it
  ledger.jsonl         privacy ledger (hash-chained; see client.ledger)
  site-log.jsonl       tamper-evident event log (hash-chained; see common.chainlog)
  approvals.json       app hashes the operator approved
  store/               de-identified training store (common.store)
  adapters/            adapters received and trained, per round
  release/             the latest signed synthetic release bundle
  private/             site-private material (de-id link log, audit pairs); never exported
  flwr/                FLWR_HOME for this site's SuperNode
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import DataError


@dataclass(frozen=True)
class SiteDir:
    """Paths inside a site's work directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def site_json(self) -> Path:
        return self.root / "site.json"

    @property
    def secret(self) -> Path:
        return self.root / "secret.key"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def node_key(self) -> Path:
        return self.keys / "node_key"

    @property
    def node_public_key(self) -> Path:
        return self.keys / "node_key.pub"

    @property
    def signing_key(self) -> Path:
        return self.keys / "signing_key.pem"

    @property
    def signing_public_key(self) -> Path:
        return self.keys / "signing_key.pub"

    @property
    def signing_passphrase(self) -> Path:
        return self.keys / "signing_key.pass"

    @property
    def policy(self) -> Path:
        return self.root / "policy.yaml"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "site-log.jsonl"

    @property
    def approvals(self) -> Path:
        return self.root / "approvals.json"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def flwr_home(self) -> Path:
        return self.root / "flwr"

    def site_id(self) -> str:
        """The site id recorded by `busgen-site init`."""
        if not self.site_json.exists():
            raise DataError(
                f"{self.root}: not a site work directory (no site.json); "
                "run `busgen-site init --site-id ID --workdir DIR` first"
            )
        return json.loads(self.site_json.read_text())["site_id"]
