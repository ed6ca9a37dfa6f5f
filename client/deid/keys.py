"""Keyed pseudonyms, UIDs and date offsets from the site's secret.

Everything is an HMAC-SHA256 of the original value under the site secret, so the same patient,
study or instance maps to the same pseudonym in every file and every run, while nobody without
the secret can recompute (or dictionary-attack) the mapping from a known MRN or UID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from common.errors import DeidError

MIN_SECRET_BYTES = 16
# Shift window for Retain Longitudinal Temporal Information with Modified Dates: every patient
# gets one offset, 10 to 40 years back, so intervals between that patient's studies survive.
MIN_SHIFT_DAYS = 10 * 365
MAX_SHIFT_DAYS = 40 * 365


def load_secret(path: Path) -> bytes:
    """Read a site secret file; refuse a missing or short one (a weak key makes pseudonyms guessable)."""
    path = Path(path)
    if not path.is_file():
        raise DeidError(
            f"{path}: site secret not found; run `busgen-site init` to create one "
            "(or pass --secret-file)"
        )
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise DeidError(
            f"{path}: site secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"
        )
    return secret


class Pseudonymizer:
    """All keyed mappings used by de-identification, derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise DeidError(f"site secret too short ({len(secret)} bytes)")
        self._secret = secret

    def digest(self, kind: str, value: str) -> bytes:
        """HMAC of one original value; `kind` separates domains (a patient id never collides with a UID)."""
        return hmac.new(
            self._secret, f"{kind}\x00{value}".encode("utf-8", "surrogateescape"), hashlib.sha256
        ).digest()

    def opaque(self, kind: str, value: str, length: int = 16) -> str:
        """A short base32 name, safe in file names and DICOM LO/SH values."""
        return base64.b32encode(self.digest(kind, value)).decode()[:length]

    def patient(self, original: str) -> str:
        return "P" + self.opaque("patient", original, 15)

    def uid(self, original: str) -> str:
        """A new valid UID under the UUID-derived root 2.25 (PS3.5 B.2): at most 44 characters."""
        return "2.25." + str(int.from_bytes(self.digest("uid", original)[:16], "big") or 1)

    def date_offset_days(self, patient_key: str) -> int:
        """Days to subtract from every date of this patient."""
        n = int.from_bytes(self.digest("date", patient_key)[:8], "big")
        return MIN_SHIFT_DAYS + n % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS)
