"""Bearer tokens for researchers: issued and revoked by the coordinator, stored as hashes only.

A token reads `bgr_<id>_<secret>`. The id is public (it names the token in the access log and
in `token revoke`); only the SHA-256 of the whole token is kept, so a copy of `tokens.json`
does not let anyone download. The server re-reads the file when it changes, so a revocation
takes effect on the next request without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path

from common.errors import DataError
from common.files import atomic_write_json, locked

PREFIX = "bgr"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """`tokens.json`: {"tokens": {id: {researcher, sha256, created, status, revoked}}}."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int], dict] | None = None

    def _read(self) -> dict:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"tokens": {}}
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, json.loads(self.path.read_text()))
        return self._cache[1]

    def _locked_update(self, change) -> object:
        with locked(self.path.with_suffix(".lock")):
            self._cache = None
            data = self._read()
            result = change(data)
            atomic_write_json(self.path, data, mode=0o600)
            return result

    def add(self, researcher: str) -> tuple[str, str]:
        """Issue a token for `researcher`; returns (token id, token). The token is shown once."""
        if not researcher.strip():
            raise DataError("token add: give the researcher's name or e-mail")
        token_id = secrets.token_hex(6)
        token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"

        def change(data: dict) -> None:
            data["tokens"][token_id] = {
                "researcher": researcher,
                "sha256": _hash(token),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "status": "active",
            }

        self._locked_update(change)
        return token_id, token

    def revoke(self, token_id: str) -> None:
        def change(data: dict) -> None:
            entry = data["tokens"].get(token_id)
            if entry is None:
                raise DataError(f"{self.path}: no token with id {token_id!r}")
            if entry["status"] != "revoked":
                entry.update(
                    status="revoked", revoked=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                )

        self._locked_update(change)

    def list(self) -> dict[str, dict]:
        return {
            tid: {k: v for k, v in e.items() if k != "sha256"}
            for tid, e in self._read()["tokens"].items()
        }

    def check(self, token: str) -> tuple[str | None, str]:
        """(token id, "ok" | "revoked" | "unknown") for a presented token, compared in constant time."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None, "unknown"
        entry = self._read()["tokens"].get(parts[1])
        if entry is None or not hmac.compare_digest(entry["sha256"], _hash(token)):
            return None, "unknown"
        return parts[1], "ok" if entry["status"] == "active" else "revoked"
