"""Ed25519 signing keys, detached manifest signatures and the consortium trust file.

A site signs what it releases; the coordinator and researchers check the signature against a
pinned trust file (key id -> site id, public key, active/revoked) instead of trusting whatever
key a bundle carries. Keys are identified by the SHA-256 of the raw 32-byte public key.

Signatures are domain-separated: the signed message is `DOMAIN + canonical manifest bytes`, so a
release signature can never be replayed as a signature over some other kind of document signed
with the same key (job approvals, log checkpoints).

Private keys are stored as encrypted PKCS8 PEM (the library's best available encryption) with a
random passphrase in a separate 0600 file. That keeps the key safe in backups and copies of the
PEM alone; in production the passphrase belongs in the OS keyring or an HSM, not beside the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.chainlog import canonical_json
from common.errors import DataError, VerificationError
from common.files import atomic_write_bytes, atomic_write_json

DOMAIN = b"busgen-release-v1\n"
TRUST_FORMAT = "busgen-trust-v1"


def generate_signing_key(
    private_path: Path, public_path: Path, passphrase_path: Path
) -> Ed25519PrivateKey:
    """Create a new Ed25519 key: encrypted PKCS8 private key, its passphrase (0600), public PEM.

    Refuses to overwrite an existing key: replacing a site's signing key silently would make
    its earlier releases unverifiable against the trust file the coordinator already holds.
    """
    private_path, public_path, passphrase_path = map(
        Path, (private_path, public_path, passphrase_path)
    )
    for path in (private_path, public_path, passphrase_path):
        if path.exists():
            raise DataError(
                f"{path}: already exists; refusing to replace a signing key "
                "(revoke the old key in the trust file first, then remove it)"
            )
    passphrase = secrets.token_urlsafe(32).encode()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    atomic_write_bytes(passphrase_path, passphrase + b"\n", 0o600)
    atomic_write_bytes(private_path, pem, 0o600)
    atomic_write_bytes(public_path, public_pem(key.public_key()), 0o644)
    return key


def load_signing_key(private_path: Path, passphrase_path: Path) -> Ed25519PrivateKey:
    """Load an encrypted signing key with its passphrase file."""
    private_path, passphrase_path = Path(private_path), Path(passphrase_path)
    for path in (private_path, passphrase_path):
        if not path.is_file():
            raise DataError(
                f"{path}: signing key file missing (run `busgen-site init` to create one)"
            )
    passphrase = passphrase_path.read_bytes().strip()
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=passphrase)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{private_path}: cannot decrypt the signing key with {passphrase_path} "
            f"(wrong passphrase or damaged file: {exc})"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise DataError(f"{private_path}: not an Ed25519 key")
    return key


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a public key from PEM (as written by `generate_signing_key`)."""
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise DataError(f"{path}: not an Ed25519 public key")
    return key


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key; a private key gives its public key's id."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return hashlib.sha256(_raw(key)).hexdigest()


def sign_manifest(key: Ed25519PrivateKey, manifest: dict) -> bytes:
    """Detached signature (base64, one line) over the domain-separated canonical manifest."""
    return base64.b64encode(key.sign(DOMAIN + canonical_json(manifest))) + b"\n"


def verify_signature(
    public_key: Ed25519PublicKey,
    manifest_bytes: bytes,
    signature_b64: bytes,
    what: str = "manifest",
) -> None:
    """Check a detached signature over exact manifest bytes; raises VerificationError."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        public_key.verify(signature, DOMAIN + manifest_bytes)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(
            f"{what}: signature does not verify (the manifest was changed "
            "after signing, or it was signed by another key)"
        ) from exc


# --- trust file -----------------------------------------------------------------------------
# {"format": "busgen-trust-v1",
#  "keys": {KEY_ID: {"site_id": ..., "public_key": base64 raw, "status": "active"|"revoked",
#                    "added": ISO time, "revoked": ISO time (when revoked), "reason": ...}}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_trust(path: Path) -> dict[str, Any]:
    """Read a trust file; a missing file is an error (an empty trust would trust nothing)."""
    path = Path(path)
    try:
        trust = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VerificationError(f"{path}: trust file not found") from exc
    except ValueError as exc:
        raise VerificationError(f"{path}: trust file is not valid JSON ({exc})") from exc
    if (
        not isinstance(trust, dict)
        or trust.get("format") != TRUST_FORMAT
        or not isinstance(trust.get("keys"), dict)
    ):
        raise VerificationError(f"{path}: not a {TRUST_FORMAT} trust file")
    return trust


def _save_trust(path: Path, trust: dict) -> None:
    atomic_write_json(Path(path), trust, 0o644)


def add_trusted_key(trust_path: Path, site_id: str, public_key: Ed25519PublicKey | Path) -> str:
    """Register a site's public signing key (creating the trust file if needed); returns its id.

    A revoked key stays revoked: adding it again is refused, so a leaked key cannot be
    quietly re-trusted.
    """
    trust_path = Path(trust_path)
    if not isinstance(public_key, Ed25519PublicKey):
        public_key = load_public_key(Path(public_key))
    trust = load_trust(trust_path) if trust_path.exists() else {"format": TRUST_FORMAT, "keys": {}}
    kid = key_id(public_key)
    existing = trust["keys"].get(kid)
    if existing and existing["status"] == "revoked":
        raise VerificationError(
            f"{trust_path}: key {kid[:16]} was revoked on {existing['revoked']}; "
            "it cannot be trusted again"
        )
    if existing and existing["site_id"] != site_id:
        raise VerificationError(
            f"{trust_path}: key {kid[:16]} is already registered to site {existing['site_id']!r}"
        )
    if not existing:
        trust["keys"][kid] = {
            "site_id": site_id,
            "status": "active",
            "added": _now(),
            "public_key": base64.b64encode(_raw(public_key)).decode(),
        }
        _save_trust(trust_path, trust)
    return kid


def revoke_key(trust_path: Path, kid: str, reason: str = "") -> None:
    """Mark a key revoked; bundles it signed no longer verify against this trust file."""
    trust = load_trust(trust_path)
    matches = [k for k in trust["keys"] if k.startswith(kid)] if kid else []
    if len(matches) != 1:
        raise VerificationError(f"{trust_path}: no single key matches id {kid!r}")
    entry = trust["keys"][matches[0]]
    if entry["status"] != "revoked":
        entry.update(status="revoked", revoked=_now(), reason=reason)
        _save_trust(Path(trust_path), trust)


def trusted_public_key(
    trust: dict, kid: str, trust_path: Path | str = "trust file"
) -> tuple[Ed25519PublicKey, dict]:
    """The public key and trust entry for `kid`; raises if the key is unknown or revoked."""
    entry = trust["keys"].get(kid) if isinstance(kid, str) else None
    if entry is None:
        raise VerificationError(
            f"signed by key {str(kid)[:16]}..., which is not in {trust_path} (unknown signer)"
        )
    if entry.get("status") != "active":
        raise VerificationError(
            f"signed by key {kid[:16]}... of site {entry.get('site_id')!r}, "
            f"which {trust_path} marks revoked since {entry.get('revoked')}"
        )
    raw = base64.b64decode(entry["public_key"])
    if hashlib.sha256(raw).hexdigest() != kid:
        raise VerificationError(
            f"{trust_path}: entry {kid[:16]} holds a public key with another id"
        )
    return Ed25519PublicKey.from_public_bytes(raw), entry
