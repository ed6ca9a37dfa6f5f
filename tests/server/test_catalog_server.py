"""The real catalog server (`busgen-server serve`, uvicorn over TLS on 127.0.0.1) driven by the
researcher CLI: publish, list, terms, fetch, verify, show; tokens, tampering, resume, traversal,
and a short concurrent-download load test."""

import hashlib
import json
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from common.chainlog import ChainLog
from common.release.cli import main as release_cli
from common.release.client import partial_path
from common.release.loader import load_release
from server.catalog import Catalog, TokenStore
from server.cli import main as server_cli
from server.provision import init_ca
from tests.common.test_bundle import make_bundle, make_signing

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog-e2e")
    key, trust = make_signing(root)
    catalog_dir = root / "catalog"
    published = CliRunner().invoke(
        server_cli,
        [
            "publish",
            str(make_bundle(root / "bundle", key, n=8)),
            "--catalog",
            str(catalog_dir),
            "--trust",
            str(trust),
        ],
    )
    assert published.exit_code == 0, published.output
    pki = init_ca(root / "pki")
    port = _free_port()
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from server.cli import main; main()",
            "serve",
            "--catalog",
            str(catalog_dir),
            "--cert",
            str(pki.server_cert),
            "--key",
            str(pki.server_key),
            "--trust",
            str(trust),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", verify=ctx, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((root / "server.log").read_text())
        time.sleep(0.2)
    tokens = TokenStore(catalog_dir / "tokens.json")
    yield {
        "url": url,
        "ca": pki.ca_cert,
        "ctx": ctx,
        "catalog": Catalog(catalog_dir),
        "trust": trust,
        "key": key,
        "root": root,
        "tokens": tokens,
        "release": "site-a-bus-v1",
        "proc": proc,
    }
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def _cli(server, *args, token):
    return CliRunner().invoke(
        release_cli,
        [*args, "--catalog", server["url"], "--token", token, "--ca", str(server["ca"])],
    )


def _researcher(server, accept=True):
    token_id, token = server["tokens"].add(f"researcher-{time.monotonic_ns()}")
    if accept:
        result = _cli(server, "terms", "--accept", token=token)
        assert result.exit_code == 0 and "accepted" in result.output, result.output
    return token_id, token


def _snapshot(root: Path) -> dict:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_list_fetch_verify_show_load(server, tmp_path):
    token_id, token = _researcher(server)
    listed = _cli(server, "list", "--json", token=token)
    assert listed.exit_code == 0, listed.output
    releases = json.loads(listed.output)
    entry = next(r for r in releases if r["release_id"] == server["release"])
    assert entry["audit_summary"]["epsilon"] == 8.0 and "Not for diagnosis" in entry["card"]

    out = tmp_path / "got"
    fetched = _cli(server, "fetch", server["release"], "--out", str(out), token=token)
    assert fetched.exit_code == 0, fetched.output
    assert "verified (8 images, site site-a" in fetched.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["got"]  # no partial files left

    verified = CliRunner().invoke(
        release_cli, ["verify", str(out), "--trust", str(server["trust"])]
    )
    assert verified.exit_code == 0 and "OK" in verified.output
    shown = CliRunner().invoke(release_cli, ["show", str(out)])
    assert (
        shown.exit_code == 0 and "Synthetic BUS set" in shown.output and "mia_auc" in shown.output
    )
    assert len(load_release(out, server["trust"])) == 8

    events = [e for e in server["catalog"].access_log.verify() if e.get("token_id") == token_id]
    assert [e["event"] for e in events] == ["terms_accepted", "list", "view", "download"]


def test_download_needs_terms(server, tmp_path):
    _, token = _researcher(server, accept=False)
    result = _cli(server, "fetch", server["release"], "--out", str(tmp_path / "x"), token=token)
    assert result.exit_code != 0 and "accept the data use terms" in result.output
    assert list(tmp_path.iterdir()) == []


def test_bad_and_revoked_tokens_get_401(server):
    token_id, token = _researcher(server)
    assert _cli(server, "list", token=token).exit_code == 0
    revoked = CliRunner().invoke(
        server_cli, ["token", "revoke", token_id, "--catalog", str(server["catalog"].root)]
    )
    assert revoked.exit_code == 0
    result = _cli(server, "list", token=token)
    assert result.exit_code != 0 and "token refused" in result.output
    for headers in (
        {},
        {"Authorization": "Bearer bgr_000000000000_nope"},
        {"Authorization": f"Basic {token}"},
    ):
        r = httpx.get(f"{server['url']}/api/v1/releases", headers=headers, verify=server["ctx"])
        assert r.status_code == 401 and "releases" not in r.text
    last = server["catalog"].access_log.verify()[-1]
    assert last["event"] == "refused" and last["token_id"] == token_id


def _raw_get(server, path: str, token: str) -> int:
    """Send a request line exactly as given (clients normalise `..`; attackers do not)."""
    host, port = server["url"].removeprefix("https://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        with server["ctx"].wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
    return int(response.split(b" ", 2)[1])


def test_unknown_release_and_path_traversal_get_404_and_touch_nothing(server, tmp_path):
    _, token = _researcher(server)
    catalog_root = server["catalog"].root
    before = _snapshot(catalog_root)
    logged = len(server["catalog"].access_log.verify())
    outside_before = sorted(p.name for p in catalog_root.parent.iterdir())
    attempts = [
        "/api/v1/releases/nope",
        "/api/v1/releases/nope/bundle.tar",
        "/api/v1/releases/../../tokens.json",
        "/api/v1/releases/..%2F..%2Ftokens.json/bundle.tar",
        "/api/v1/releases/%2e%2e/bundle.tar",
        "/api/v1/releases/site-a-bus-v1/../../../trust.json",
        "/api/v1/releases/site-a-bus-v1%2Fbundle%2Fmanifest.json",
        "/api/v1/releases/..%5c..%5ctokens.json/bundle.tar",
        "/tokens.json",
        "/../trust.json",
    ]
    assert _raw_get(server, f"/api/v1/releases/{server['release']}", token) == 200  # control
    for path in attempts:
        assert _raw_get(server, path, token) == 404, path
    # the access log holds the control request only; every other file is untouched
    after = _snapshot(catalog_root)
    assert {k: v for k, v in after.items() if k != "access-log.jsonl"} == {
        k: v for k, v in before.items() if k != "access-log.jsonl"
    }
    log = server["catalog"].access_log.verify()
    assert len(log) == logged + 1 and log[-1]["event"] == "view"
    assert sorted(p.name for p in catalog_root.parent.iterdir()) == outside_before
    # the researcher tool refuses path-like ids before touching the network or the disk
    result = _cli(server, "fetch", "../../tokens.json", "--out", str(tmp_path / "x"), token=token)
    assert result.exit_code != 0 and "is not a release id" in result.output
    assert list(tmp_path.iterdir()) == []


def _flip_png_byte(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("00002.png"))
    with open(archive, "r+b") as fh:
        fh.seek(member.offset_data + member.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_tampering_on_the_server_is_detected_at_fetch(server, tmp_path):
    """A catalog that alters an image is caught: by the catalog's archive hash, and (if the
    attacker also rewrote the catalog entry) by the site's signature over the manifest."""
    catalog = server["catalog"]
    entry = catalog.publish(
        make_bundle(tmp_path / "b", server["key"], dataset_id="tamper-test"), server["trust"]
    )
    _, token = _researcher(server)
    _flip_png_byte(catalog.archive(entry))
    result = _cli(server, "fetch", entry["release_id"], "--out", str(tmp_path / "x"), token=token)
    assert result.exit_code == 4 and "does not match the catalog's SHA-256" in result.output

    entry_file = catalog.release_dir(entry) / "release.json"
    forged = json.loads(entry_file.read_text())
    forged["archive"]["sha256"] = hashlib.sha256(catalog.archive(entry).read_bytes()).hexdigest()
    entry_file.write_text(json.dumps(forged))
    result = _cli(server, "fetch", entry["release_id"], "--out", str(tmp_path / "x"), token=token)
    assert result.exit_code == 4
    assert "failed verification, nothing was kept" in result.output
    assert "train/00002.png SHA-256 does not match" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no bundle, no partial, no temp


def test_revoked_site_key_fails_fetch(server, tmp_path):
    """The server serves the live trust file, so revoking a site key reaches researchers at once."""
    from common.release.signing import key_id, revoke_key

    site_b, _ = make_signing(server["root"], site_id="site-b")
    entry = server["catalog"].publish(
        make_bundle(tmp_path / "b", site_b, site_id="site-b"), server["trust"]
    )
    _, token = _researcher(server)
    revoke_key(server["trust"], key_id(site_b), reason="key leaked")
    result = _cli(server, "fetch", entry["release_id"], "--out", str(tmp_path / "x"), token=token)
    assert (
        result.exit_code == 4 and "of site 'site-b'" in result.output and "revoked" in result.output
    )
    assert not (tmp_path / "x").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    token_id, token = _researcher(server)
    entry = server["catalog"].release(server["release"])
    out = tmp_path / "resumed"
    half = entry["archive"]["size"] // 2
    # What an interrupted transfer leaves behind: the first half of the archive in the .part file.
    r = httpx.get(
        f"{server['url']}/api/v1/releases/{server['release']}/bundle.tar",
        headers={"Authorization": f"Bearer {token}", "Range": f"bytes=0-{half - 1}"},
        verify=server["ctx"],
    )
    assert r.status_code == 206 and len(r.content) == half
    partial_path(out, server["release"]).write_bytes(r.content)

    result = _cli(server, "fetch", server["release"], "--out", str(out), token=token)
    assert result.exit_code == 0, result.output
    downloads = [
        e
        for e in server["catalog"].access_log.verify()
        if e["event"] == "download" and e["token_id"] == token_id
    ]
    assert [d["range"] for d in downloads] == [f"bytes=0-{half - 1}", f"bytes={half}-"]
    assert not partial_path(out, server["release"]).exists()
    assert (out / "manifest.json").is_file()


def test_concurrent_downloads(server):
    """8 simultaneous full downloads over TLS, all complete and identical (bounded, loopback)."""
    _, token = _researcher(server)
    entry = server["catalog"].release(server["release"])
    url = f"{server['url']}/api/v1/releases/{server['release']}/bundle.tar"

    def one(_):
        r = httpx.get(
            url, headers={"Authorization": f"Bearer {token}"}, verify=server["ctx"], timeout=30
        )
        return r.status_code, hashlib.sha256(r.content).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [(200, entry["archive"]["sha256"])] * 16
    assert server["proc"].poll() is None
    ChainLog(server["catalog"].access_log.path).verify()  # concurrent appends kept the chain intact
