"""`busgen-site doctor` against real TLS servers on 127.0.0.1 with generated certificates."""

import datetime as dt
import email.utils
import json
import select
import socket
import ssl
import threading
import time

import pytest
import trustme
from click.testing import CliRunner

from client import doctor
from client.cli import main as site_cli
from client.doctor import check_ca, check_chain, check_registration, check_superlink, run_checks
from client.site_init import init_site
from client.workdir import SiteDir

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


class TlsServer:
    """A real HTTPS endpoint answering like the SuperLink's /health, with a chosen Date."""

    def __init__(self, cert: trustme.LeafCert, clock_offset_s=0.0, status=200):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.ctx)
        self.offset, self.status = clock_offset_s, status
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    tls.recv(4096)
                    date = email.utils.formatdate(time.time() + self.offset, usegmt=True)
                    tls.sendall(
                        f"HTTP/1.1 {self.status} X\r\nDate: {date}\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
                    )
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self.stop = True
        self.sock.close()


def relay(socks: list[socket.socket]) -> None:
    """Copy bytes both ways until either side closes, resets or goes quiet for 5 s."""
    while True:
        ready, _, _ = select.select(socks, [], [], 5)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(65536)
                if data:
                    socks[1 - socks.index(s)].sendall(data)
            except OSError:
                return
            if not data:
                return


class ConnectProxy:
    """A minimal HTTP CONNECT proxy (what hospitals put between the site and the internet);
    with `refuse`, it answers every CONNECT with that status line, as a proxy whose policy
    does not allow the destination."""

    def __init__(self, refuse: str | None = None):
        self.refuse = refuse
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tunnels = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        target = head.split()[1].decode()
        self.tunnels.append(target)
        refuse = self.refuse
        if f"\r\nHost: {target}\r\n".encode() not in head:
            refuse = "400 Host header required"  # as strict proxies answer
        if refuse:
            client.sendall(f"HTTP/1.1 {refuse}\r\nContent-Length: 0\r\n\r\n".encode())
            client.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with client, upstream:
            relay([client, upstream])

    def close(self):
        self.sock.close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    """Tests talk to 127.0.0.1 directly unless they set a proxy themselves."""
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def site(tmp_path):
    init_site("hospital-a", tmp_path / "site")
    return SiteDir(tmp_path / "site")


@pytest.fixture
def ca(site):
    """The consortium CA, installed where `busgen-site join` keeps it."""
    authority = trustme.CA(organization_name="test CA")
    authority.cert_pem.write_to_path(str(site.keys / "ca.pem"))
    return authority


def by_name(checks):
    return {c.name: c for c in checks}


def serve(ca, request, **kw):
    cert_kw = {k: kw.pop(k) for k in ("not_before", "not_after") if k in kw}
    server = TlsServer(ca.issue_cert("localhost", **cert_kw), **kw)
    request.addfinalizer(server.close)
    return server


def use_proxy(monkeypatch, request, **kw):
    proxy = ConnectProxy(**kw)
    request.addfinalizer(proxy.close)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    return proxy


def test_healthy_superlink(site, ca, request):
    server = serve(ca, request)
    checks = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))
    assert [checks[n].status for n in ("dns", "tcp", "tls", "superlink-cert", "http", "clock")] == [
        "ok"
    ] * 6
    assert "HTTP 200" in checks["http"].detail
    assert "test CA" in checks["tls"].detail


def test_missing_ca_is_reported(site, request):
    server = serve(trustme.CA(), request)
    checks = by_name(run_checks(site, f"localhost:{server.port}", gpu=False))
    assert checks["ca"].status == "fail"
    assert str(site.keys / "ca.pem") in checks["ca"].detail and "missing" in checks["ca"].detail
    assert "ca.pem" in checks["ca"].fix
    assert checks["tcp"].status == "ok" and checks["tls"].status == "skip"

    result = CliRunner().invoke(
        site_cli,
        [
            "doctor",
            "--workdir",
            str(site.root),
            "--superlink",
            f"localhost:{server.port}",
            "--json",
        ],
    )
    assert result.exit_code == 1
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["ca"]["status"] == "fail" and rows["gpu"]["status"] in ("ok", "warn")


def test_expired_server_certificate(site, ca, request):
    server = serve(ca, request, not_before=NOW - 400 * DAY, not_after=NOW - 2 * DAY)
    checks = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))
    assert checks["tls"].status == "fail"
    assert "expired on" in checks["tls"].detail
    assert f"{(NOW - 2 * DAY):%Y-%m-%d}" in checks["tls"].detail
    assert "CERTIFICATES.md" in checks["tls"].fix


def test_expired_ca_file(tmp_path, monkeypatch):
    """trustme's CAs are valid from 2000 to 3000: the doctor's clock is moved past the end."""
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    assert check_ca(tmp_path / "ca.pem").status == "ok"
    monkeypatch.setattr(doctor, "_utcnow", lambda: dt.datetime(3000, 6, 1, tzinfo=dt.timezone.utc))
    check = check_ca(tmp_path / "ca.pem")
    assert check.status == "fail" and "expired on 3000-01-01" in check.detail


def test_server_certificate_in_place_of_the_ca_is_refused(tmp_path):
    leaf = trustme.CA().issue_cert("localhost")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "ca.pem"))
    check = check_ca(tmp_path / "ca.pem")
    assert check.status == "fail" and "not a CA certificate" in check.detail


def test_certificate_expiring_within_30_days_warns(site, ca, request):
    server = serve(ca, request, not_after=NOW + 10 * DAY)
    checks = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))
    assert checks["tls"].status == "ok"
    assert checks["superlink-cert"].status == "warn"
    assert "expires in 9 days" in checks["superlink-cert"].detail


def test_certificate_of_another_ca_is_refused(site, ca, request):
    server = serve(trustme.CA(organization_name="rogue CA"), request)
    check = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))["tls"]
    assert check.status == "fail"
    assert "not signed by the consortium CA" in check.detail and "rogue CA" in check.detail


def test_unreachable_superlink(site, ca):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    checks = by_name(check_superlink(f"127.0.0.1:{port}", site.keys / "ca.pem", timeout_s=2))
    assert checks["dns"].status == "ok"
    assert checks["tcp"].status == "fail" and f"127.0.0.1:{port}" in checks["tcp"].detail
    assert "firewall" in checks["tcp"].fix and "tls" not in checks

    checks = by_name(check_superlink("superlink.busgen.invalid:443", site.keys / "ca.pem"))
    assert checks["dns"].status == "fail" and "does not resolve" in checks["dns"].detail


def test_port_that_never_speaks_tls_times_out_at_the_handshake(site, ca, request):
    """TCP connects (the kernel accepts into the backlog) but nothing answers the handshake."""
    silent = socket.create_server(("127.0.0.1", 0))
    request.addfinalizer(silent.close)
    port = silent.getsockname()[1]
    t0 = time.monotonic()
    checks = by_name(check_superlink(f"127.0.0.1:{port}", site.keys / "ca.pem", timeout_s=1))
    assert time.monotonic() - t0 < 10
    assert checks["tcp"].status == "ok"
    assert checks["tls"].status == "fail" and "timed out" in checks["tls"].detail
    assert "http" not in checks


def test_clock_skew_from_date_header(site, ca, request):
    behind = serve(ca, request, clock_offset_s=3600)  # server 1 h ahead of us
    clock = by_name(check_superlink(f"localhost:{behind.port}", site.keys / "ca.pem"))["clock"]
    assert clock.status == "fail" and "behind" in clock.detail and "NTP" in clock.fix
    ahead = serve(ca, request, clock_offset_s=-30)  # we are 30 s ahead: Flower refuses
    clock = by_name(check_superlink(f"localhost:{ahead.port}", site.keys / "ca.pem"))["clock"]
    assert clock.status == "fail" and "ahead of" in clock.detail


def test_proxy_answering_without_superlink_fails_http(site, ca, request):
    server = serve(ca, request, status=502)
    http = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))["http"]
    assert http.status == "fail" and "HTTP 502" in http.detail
    assert "busgen-server start" in http.fix


def test_connects_through_https_proxy(site, ca, request, monkeypatch):
    server = serve(ca, request)
    proxy = use_proxy(monkeypatch, request)
    checks = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))
    assert checks["dns"].status == "skip"
    assert checks["tcp"].status == "ok" and "via proxy" in checks["tcp"].detail
    assert checks["tls"].status == "ok" and checks["http"].status == "ok"
    assert f"localhost:{server.port}" in proxy.tunnels


def test_rogue_certificate_behind_proxy_is_named(site, ca, request, monkeypatch):
    """The second, unverified look at the certificate goes through the tunnel too."""
    server = serve(trustme.CA(organization_name="inspecting proxy CA"), request)
    proxy = use_proxy(monkeypatch, request)
    check = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))["tls"]
    assert check.status == "fail" and "inspecting proxy CA" in check.detail
    assert "exempt this host" in check.fix
    assert proxy.tunnels.count(f"localhost:{server.port}") == 3  # tcp, tls, unverified look


def test_proxy_refusing_the_tunnel_is_named(site, ca, request, monkeypatch):
    server = serve(ca, request)
    use_proxy(monkeypatch, request, refuse="403 Forbidden")
    checks = by_name(check_superlink(f"localhost:{server.port}", site.keys / "ca.pem"))
    tcp = checks["tcp"]
    assert tcp.status == "fail" and "refused to open a tunnel" in tcp.detail
    assert "403 Forbidden" in tcp.detail and "CONNECT" in tcp.fix
    assert "tls" not in checks


def test_tampered_site_log_fails(site):
    from common.chainlog import ChainLog

    log = ChainLog(site.log)
    log.append("ingest", source="pacs-export-1", accepted=10, quarantined=0)
    log.append("ingest", source="pacs-export-2", accepted=5, quarantined=1)
    assert check_chain(site.log, "site-log").status == "ok"
    lines = site.log.read_text().splitlines()
    lines[0] = lines[0].replace('"accepted": 10', '"accepted": 11')
    site.log.write_text("\n".join(lines) + "\n")
    check = check_chain(site.log, "site-log")
    assert check.status == "fail" and "line 1" in check.detail


def test_registration_verdict_from_supernode_log(site):
    assert check_registration(site).status == "warn"
    log = site.root / "logs" / "supernode.log"
    log.parent.mkdir()
    log.write_text(
        "INFO : Starting Flower SuperNode\nERROR : [code: 2004] Failed to activate SuperNode.\n"
    )
    assert check_registration(site).status == "fail"
    log.write_text(log.read_text() + "INFO : Starting Flower SuperNode\nINFO : SuperNode ID: 42\n")
    check = check_registration(site)
    assert check.status == "ok" and "node 42" in check.detail
