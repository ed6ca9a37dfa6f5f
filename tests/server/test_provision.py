"""CA, SuperLink certificate, node keys and site init, with real cryptography."""

import json
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from client.site_init import init_site
from client.workdir import SiteDir
from common.errors import DataError, FederationError
from server.provision import check_node_public_key, init_ca, server_cert_hosts


def test_init_ca_writes_verifiable_chain_with_sans(tmp_path):
    ca = init_ca(tmp_path / "pki", hosts=("localhost", "127.0.0.1", "link.example.org"))
    assert stat.S_IMODE(ca.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.server_key.stat().st_mode) == 0o600
    assert set(server_cert_hosts(ca)) == {"localhost", "127.0.0.1", "link.example.org"}
    server = x509.load_pem_x509_certificate(ca.server_cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    server.verify_directly_issued_by(root)
    # the pair loads into an SSL context the way the SuperLink uses it
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(ca.server_cert, ca.server_key)


def test_init_ca_is_idempotent(tmp_path):
    first = init_ca(tmp_path)
    before = first.ca_key.read_bytes(), first.server_cert.read_bytes()
    second = init_ca(tmp_path)
    assert (second.ca_key.read_bytes(), second.server_cert.read_bytes()) == before


def test_site_init_creates_keys_and_never_overwrites(tmp_path):
    done = init_site("hospital-a", tmp_path / "a")
    assert set(done.values()) == {"created"}
    site = SiteDir(tmp_path / "a")
    assert json.loads(site.site_json.read_text())["site_id"] == "hospital-a"
    for secret in (site.secret, site.node_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key = load_ssh_private_key(site.node_key.read_bytes(), None)
    assert key.curve.name == "secp384r1"
    assert check_node_public_key(site.node_public_key).startswith("ecdsa-sha2-nistp384 ")
    assert site.policy.exists() and site.signing_key.exists()
    snapshot = {
        p: p.read_bytes() for p in (site.secret, site.node_key, site.signing_key, site.policy)
    }
    again = init_site("hospital-a", tmp_path / "a")
    assert set(again.values()) == {"kept"}
    assert {p: p.read_bytes() for p in snapshot} == snapshot


def test_site_init_refuses_other_site_and_bad_ids(tmp_path):
    init_site("hospital-a", tmp_path / "a")
    with pytest.raises(DataError, match="belongs to site 'hospital-a'"):
        init_site("hospital-b", tmp_path / "a")
    with pytest.raises(DataError, match="site id"):
        init_site("Hospital A!", tmp_path / "x")


def test_register_rejects_non_ec_keys(tmp_path):
    bad = tmp_path / "rsa.pub"
    bad.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x\n")
    with pytest.raises(FederationError, match="rsa.pub"):
        check_node_public_key(bad)
