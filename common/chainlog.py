"""Append-only, hash-chained JSON-lines logs (site event log, privacy ledger, access log).

Each line is a JSON object with `seq`, `time`, `event`, the event's fields, `prev` (the hash of
the previous line) and `hash` (SHA-256 over the canonical JSON of the line without `hash`).
Editing, deleting or reordering any line breaks the chain at that line, and `verify` says which.
Lines are appended with fsync, so a crash leaves at most one torn final line, which `verify`
reports and `append` refuses to build on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from common.errors import VerificationError

GENESIS = "0" * 64


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8. Used for hashing and signing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _line_hash(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


class ChainLog:
    """A hash-chained JSONL file. Safe for one writer process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def entries(self) -> list[dict]:
        """All entries after verifying the chain (raises VerificationError naming the line)."""
        return self.verify()

    def verify(self) -> list[dict]:
        entries: list[dict] = []
        if not self.path.exists():
            return entries
        prev = GENESIS
        with open(self.path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    entry = json.loads(raw)
                except ValueError as exc:
                    raise VerificationError(
                        f"{self.path}: line {n} is not valid JSON (torn write or edit)"
                    ) from exc
                if entry.get("prev") != prev:
                    raise VerificationError(
                        f"{self.path}: line {n} does not follow line {n - 1} "
                        "(a line was removed, inserted or reordered)"
                    )
                if entry.get("hash") != _line_hash(entry):
                    raise VerificationError(
                        f"{self.path}: line {n} was modified (its hash does not match its content)"
                    )
                if entry.get("seq") != n:
                    raise VerificationError(
                        f"{self.path}: line {n} has sequence {entry.get('seq')}"
                    )
                prev = entry["hash"]
                entries.append(entry)
        return entries

    def _last_entry(self) -> dict | None:
        """The final line, checked on its own: appending costs O(1), not a full re-verify."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(max(0, self.path.stat().st_size - 65536))
            tail = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            entry = json.loads(tail)
        except ValueError as exc:
            raise VerificationError(
                f"{self.path}: the last line is not valid JSON (torn write "
                "or edit); run `log verify` and repair before appending"
            ) from exc
        if entry.get("hash") != _line_hash(entry):
            raise VerificationError(f"{self.path}: the last line was modified; refusing to append")
        return entry

    def append(self, event: str, **fields: Any) -> dict:
        """Append one event and fsync it; returns the written entry."""
        last = self._last_entry()
        prev = last["hash"] if last else GENESIS
        seq = last["seq"] + 1 if last else 1
        entry = {
            "seq": seq,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": event,
            **fields,
            "prev": prev,
        }
        entry["hash"] = _line_hash(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry
