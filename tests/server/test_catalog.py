"""Catalog on disk: publish (verify, version, refuse), tokens, terms; no server needed."""

import json
import tarfile

import pytest
from click.testing import CliRunner

from common.errors import VerificationError
from common.release.bundle import valid_release_id, verify_bundle
from server.catalog import Catalog, TokenStore
from server.cli import main as server_cli
from tests.common.test_bundle import make_bundle, make_signing


def test_publish_versions_and_immutability(tmp_path):
    key, trust = make_signing(tmp_path)
    catalog = Catalog(tmp_path / "catalog")
    first = catalog.publish(make_bundle(tmp_path / "b1", key), trust)
    second = catalog.publish(make_bundle(tmp_path / "b2", key, seed=1), trust)
    assert (first["release_id"], second["release_id"]) == ("site-a-bus-v1", "site-a-bus-v2")
    assert [e["release_id"] for e in catalog.releases()] == ["site-a-bus-v1", "site-a-bus-v2"]
    odd = catalog.publish(
        make_bundle(tmp_path / "b3", key, seed=2, dataset_id="../Odd..Name/"), trust
    )
    assert odd["release_id"] == "odd.name-v1" and catalog.release("odd.name-v1") == odd
    assert first["audit_summary"]["epsilon"] == 8.0
    # the stored copy verifies and the archive holds exactly the bundle's files
    stored = catalog.release_dir(first) / "bundle"
    manifest = verify_bundle(stored, trust)
    with tarfile.open(catalog.archive(first)) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == {f["path"] for f in manifest["files"]} | {"manifest.json", "manifest.sig"}
    with pytest.raises(VerificationError, match="already published as site-a-bus-v1"):
        catalog.publish(tmp_path / "b1", trust)
    events = [e["event"] for e in catalog.publish_log.verify()]
    assert events == ["published", "published", "published", "refused"]


def test_tampered_bundle_is_refused_with_reason_and_nothing_added(tmp_path):
    key, trust = make_signing(tmp_path)
    bundle = make_bundle(tmp_path / "b", key)
    (bundle / "README.md").write_text("# Totally real patient scans\n")
    result = CliRunner().invoke(
        server_cli,
        ["publish", str(bundle), "--catalog", str(tmp_path / "catalog"), "--trust", str(trust)],
    )
    assert result.exit_code == VerificationError.exit_code
    assert "README.md has 29 bytes, the manifest says" in result.output
    catalog = Catalog(tmp_path / "catalog")
    assert catalog.releases() == []
    assert list(catalog.releases_dir.iterdir()) == []  # no staging leftovers
    refused = catalog.publish_log.verify()[-1]
    assert refused["event"] == "refused" and "README.md" in refused["reason"]


def test_tokens_store_hashes_only_and_revoke(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token_id, token = store.add("dr.x@uni.example")
    assert token not in (tmp_path / "tokens.json").read_text()
    assert store.check(token) == (token_id, "ok")
    assert store.check(token[:-1] + ("A" if token[-1] != "A" else "B")) == (None, "unknown")
    assert store.check("garbage") == (None, "unknown")
    store.revoke(token_id)
    assert store.check(token) == (token_id, "revoked")


def test_token_cli(tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        server_cli, ["token", "add", "alice", "--catalog", str(tmp_path / "c"), "--json"]
    )
    assert out.exit_code == 0, out.output
    issued = json.loads(out.output)
    listed = json.loads(
        runner.invoke(
            server_cli, ["token", "list", "--catalog", str(tmp_path / "c"), "--json"]
        ).output
    )
    assert (
        listed[issued["token_id"]]["status"] == "active"
        and "sha256" not in listed[issued["token_id"]]
    )
    assert (
        runner.invoke(
            server_cli, ["token", "revoke", issued["token_id"], "--catalog", str(tmp_path / "c")]
        ).exit_code
        == 0
    )
    assert TokenStore(tmp_path / "c" / "tokens.json").check(issued["token"])[1] == "revoked"


@pytest.mark.parametrize(
    "release_id", ["..", "../tokens.json", "a/b", ".hidden", "A", "x" * 200, "a..b"]
)
def test_release_ids_are_never_paths(release_id):
    assert not valid_release_id(release_id)
