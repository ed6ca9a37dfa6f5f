"""Signing keys, detached signatures and the trust file, with real Ed25519 keys."""

import base64
import stat

import pytest

from common.chainlog import canonical_json
from common.errors import DataError, VerificationError
from common.release.signing import (
    add_trusted_key,
    generate_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    load_trust,
    revoke_key,
    sign_manifest,
    trusted_public_key,
    verify_signature,
)


def _key(tmp_path, name="site"):
    paths = (tmp_path / f"{name}.pem", tmp_path / f"{name}.pub", tmp_path / f"{name}.pass")
    return generate_signing_key(*paths), paths


def test_key_is_encrypted_private_and_round_trips(tmp_path):
    key, (priv, pub, passfile) = _key(tmp_path)
    assert b"ENCRYPTED PRIVATE KEY" in priv.read_bytes()
    for path in (priv, passfile):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_signing_key(priv, passfile)
    assert key_id(loaded) == key_id(key) == key_id(load_public_key(pub))
    assert len(key_id(key)) == 64


def test_wrong_passphrase_and_overwrite_are_refused(tmp_path):
    _, (priv, pub, passfile) = _key(tmp_path)
    with pytest.raises(DataError, match="already exists"):
        generate_signing_key(priv, pub, passfile)
    passfile.write_text("not-the-passphrase\n")
    with pytest.raises(DataError, match="cannot decrypt"):
        load_signing_key(priv, passfile)


def test_signature_is_domain_separated_and_detects_edits(tmp_path):
    key, _ = _key(tmp_path)
    manifest = {"files": [], "site_id": "a"}
    sig = sign_manifest(key, manifest)
    verify_signature(key.public_key(), canonical_json(manifest), sig)
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_signature(key.public_key(), canonical_json({**manifest, "site_id": "b"}), sig)
    # A raw signature over the same bytes without the domain prefix is not accepted.
    bare = base64.b64encode(key.sign(canonical_json(manifest)))
    with pytest.raises(VerificationError):
        verify_signature(key.public_key(), canonical_json(manifest), bare)


def test_trust_file_add_revoke(tmp_path):
    key, (_, pub, _) = _key(tmp_path)
    trust_path = tmp_path / "trust.json"
    kid = add_trusted_key(trust_path, "site-a", pub)
    assert kid == key_id(key)
    public, entry = trusted_public_key(load_trust(trust_path), kid, trust_path)
    assert entry["site_id"] == "site-a" and key_id(public) == kid
    with pytest.raises(VerificationError, match="already registered to site 'site-a'"):
        add_trusted_key(trust_path, "site-b", pub)
    other, _ = _key(tmp_path, "other")
    with pytest.raises(VerificationError, match="not in .*unknown signer"):
        trusted_public_key(load_trust(trust_path), key_id(other), trust_path)
    revoke_key(trust_path, kid[:12], reason="laptop stolen")
    with pytest.raises(VerificationError, match="revoked"):
        trusted_public_key(load_trust(trust_path), kid, trust_path)
    with pytest.raises(VerificationError, match="cannot be trusted again"):
        add_trusted_key(trust_path, "site-a", pub)
