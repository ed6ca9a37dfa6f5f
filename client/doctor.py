"""`busgen-site doctor`: can this site take part, and if not, what exactly should IT fix?

Each check returns one `Check` (ok / warn / fail / skip) with a one-line fix. The checks look
at the site from the inside (work directory, keys, policy, logs, disk, GPU) and from the
network, the way the SuperNode will connect: DNS, outbound TCP (through HTTPS_PROXY when the
environment names one, as the SuperNode's HTTP client does), the TLS handshake against the
consortium CA the site holds, the certificate's expiry, and an HTTP request to the SuperLink.

Clock skew is measured against the HTTP `Date` header of that response (1 s resolution); this
needs no NTP port, which hospital firewalls often close. It matters: a SuperNode signs every
request with a timestamp, and Flower 1.42's SuperLink refuses timestamps more than 5 s in the
future or 305 s in the past. When no `Date` header comes back, the doctor can only check that
the local clock is after the server certificate's start of validity, and says so.

What the site cannot see: whether the coordinator registered its node key (that list sits
behind the Control API, which sites cannot reach). The doctor reports the key's fingerprint for
comparison and reads the SuperNode's own log for the SuperLink's verdict at the last `join`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import http.client
import shutil
import socket
import ssl
import stat
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509

from client.workdir import SiteDir
from common.errors import BusgenError

EXPIRY_WARN_DAYS = 30
CLOCK_AHEAD_FAIL_S = 4.0  # Flower refuses signatures > 5 s in the future; 1 s Date resolution
CLOCK_BEHIND_FAIL_S = 290.0  # ... and older than 305 s
CLOCK_WARN_S = 2.0
DISK_FAIL_BYTES = 2 * 2**30
DISK_WARN_BYTES = 20 * 2**30
GPU_WARN_BYTES = 8 * 2**30


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def site_ca(site: SiteDir) -> Path:
    """Where `busgen-site join` keeps the consortium CA it trusts (client.supernode)."""
    return site.keys / "ca.pem"


def _expiry(cert: x509.Certificate, what: str, name: str, renew: str) -> Check:
    now = _utcnow()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return Check(
            name,
            "fail",
            f"{what} is valid only from {start:%Y-%m-%d %H:%M} UTC",
            "this machine's clock is behind; fix NTP, or the certificate was issued "
            "with a wrong start date",
        )
    if now > end:
        return Check(name, "fail", f"{what} expired on {end:%Y-%m-%d}", renew)
    days = (end - now).days
    if days <= EXPIRY_WARN_DAYS:
        return Check(name, "warn", f"{what} expires in {days} days ({end:%Y-%m-%d})", renew)
    return Check(name, "ok", f"{what} valid until {end:%Y-%m-%d} ({days} days)")


# --- local checks -------------------------------------------------------------------------


def check_workdir(site: SiteDir) -> Check:
    try:
        return Check("workdir", "ok", f"site {site.site_id()} in {site.root}")
    except (BusgenError, OSError, ValueError, KeyError) as exc:
        return Check(
            "workdir",
            "fail",
            str(exc),
            f"run `busgen-site init --site-id ID --workdir {site.root}`",
        )


def check_ca(path: Path) -> Check:
    renew = (
        "ask the coordinator for the current ca.pem (docs: deploy/CERTIFICATES.md) and "
        f"copy it to {path}"
    )
    if not path.exists():
        return Check(
            "ca",
            "fail",
            f"{path}: consortium CA certificate missing",
            f"copy the coordinator's ca.pem to {path} (check its fingerprint with "
            "the coordinator by phone), or pass --ca",
        )
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        return Check("ca", "fail", f"{path}: not a PEM certificate ({exc})", renew)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return Check("ca", "fail", f"{path}: this is not a CA certificate", renew)
    check = _expiry(cert, f"CA {cert.subject.rfc4514_string()}", "ca", renew)
    if check.status == "ok":
        check.detail += f", SHA-256 fingerprint {cert.fingerprint(_sha256()).hex()[:32]}…"
    return check


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def ssh_fingerprint(public_line: str) -> str:
    """`ssh-keygen -lf` style fingerprint of an OpenSSH public key line."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_node_key(site: SiteDir) -> Check:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    fix_missing = (
        f"run `busgen-site init` to create it, then send {site.node_public_key} to the coordinator"
    )
    if not site.node_key.exists():
        return Check("node-key", "fail", f"{site.node_key}: node key missing", fix_missing)
    try:
        key = serialization.load_ssh_private_key(site.node_key.read_bytes(), password=None)
        public_line = site.node_public_key.read_text().strip()
        public = serialization.load_ssh_public_key(public_line.encode())
    except (OSError, ValueError, IndexError) as exc:
        return Check(
            "node-key", "fail", f"{site.node_key}: unreadable key pair ({exc})", fix_missing
        )
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return Check(
            "node-key",
            "fail",
            f"{site.node_key}: not an EC key; Flower needs EC P-384",
            fix_missing,
        )
    if key.public_key().public_numbers() != public.public_numbers():
        return Check(
            "node-key",
            "fail",
            f"{site.node_public_key} does not belong to {site.node_key}",
            "restore the matching public key from the private key "
            f"(ssh-keygen -y -f {site.node_key}) and compare with the coordinator",
        )
    mode = stat.S_IMODE(site.node_key.stat().st_mode)
    detail = f"EC {key.curve.name}, fingerprint {ssh_fingerprint(public_line)}"
    if mode & 0o077:
        return Check(
            "node-key",
            "warn",
            f"{detail}; private key readable by others (mode {mode:o})",
            f"chmod 600 {site.node_key}",
        )
    return Check("node-key", "ok", detail)


def check_registration(site: SiteDir) -> Check:
    """The SuperLink's verdict on this node's key at the last `busgen-site join`."""
    log = site.root / "logs" / "supernode.log"
    fix = (
        f"send {site.node_public_key} (fingerprint shown by node-key) to the coordinator "
        "for `busgen-server register-site`, then restart `busgen-site join`"
    )
    if not log.exists():
        return Check(
            "node-registered",
            "warn",
            "unknown: this site has not joined yet "
            "(the registration list is only visible to the coordinator)",
            fix,
        )
    lines = log.read_text(errors="replace").splitlines()
    accepted = max((i for i, line in enumerate(lines) if "SuperNode ID:" in line), default=-1)
    refused = max(
        (
            i
            for i, line in enumerate(lines)
            if "Failed to activate SuperNode" in line or "must be registered" in line
        ),
        default=-1,
    )
    if refused > accepted:
        return Check(
            "node-registered",
            "fail",
            f"the SuperLink refused this node key at the last join ({log}:{refused + 1})",
            fix,
        )
    if accepted >= 0:
        node_id = lines[accepted].split("SuperNode ID:")[1].strip()
        return Check(
            "node-registered", "ok", f"accepted by the SuperLink as node {node_id} at the last join"
        )
    return Check("node-registered", "warn", f"no verdict in {log} yet", fix)


def check_gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", "fail", "torch is not installed", "reinstall busgen-fed")
    if not torch.cuda.is_available():
        return Check(
            "gpu",
            "warn",
            "no CUDA GPU visible: training runs on CPU (demo sizes only)",
            "for the gpu profile: install the NVIDIA driver and use the CUDA image "
            "(deploy/docker/site-cuda.Dockerfile) with `--gpus all`",
        )
    props = torch.cuda.get_device_properties(0)
    detail = (
        f"{torch.cuda.device_count()} GPU(s); GPU 0 {props.name}, "
        f"{props.total_memory / 2**30:.1f} GiB"
    )
    if props.total_memory < GPU_WARN_BYTES:
        return Check(
            "gpu",
            "warn",
            detail + " (less than 8 GiB)",
            "use a smaller profile or a GPU with more memory",
        )
    return Check("gpu", "ok", detail)


def check_disk(site: SiteDir) -> Check:
    path = site.root if site.root.exists() else site.root.parent
    free = shutil.disk_usage(path).free
    detail = f"{free / 2**30:.1f} GiB free on {path}"
    fix = "free space or move the work directory to a larger volume"
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", detail, fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", detail, fix)
    return Check("disk", "ok", detail)


def check_policy(site: SiteDir) -> Check:
    from common.privacy.policy import load_policy

    try:
        p = load_policy(site.policy)
    except BusgenError as exc:
        return Check(
            "policy",
            "fail",
            str(exc),
            f"fix {site.policy} (the message says what is "
            "wrong) or remove it and run `busgen-site init` for the default policy",
        )
    return Check(
        "policy",
        "ok",
        f"max epsilon per job {p.max_epsilon_per_job}, total "
        f"{p.max_epsilon_total}, max delta {p.max_delta:g}, min patients {p.min_patients}",
    )


def check_chain(path: Path, name: str) -> Check:
    from common.chainlog import ChainLog

    if not path.exists():
        return Check(name, "ok", f"{path}: no entries yet")
    try:
        n = len(ChainLog(path).verify())
    except BusgenError as exc:
        return Check(
            name,
            "fail",
            str(exc),
            "do not edit this file: restore it from backup and "
            "report the break to your data protection officer",
        )
    return Check(name, "ok", f"{path.name}: {n} entries, hash chain intact")


def check_approval(site: SiteDir) -> Check:
    from client.approval import installed_app_hash, is_approved

    value = installed_app_hash()
    try:
        ok = is_approved(site, value)
    except BusgenError as exc:
        return Check("approval", "fail", str(exc), "see deploy/README.md, 'Approving jobs'")
    if ok:
        return Check("approval", "ok", f"installed app {value[:16]}… is approved")
    return Check(
        "approval",
        "warn",
        f"installed app {value} is not approved: every job will be refused",
        f"after review: busgen-site approve --workdir {site.root} {value}",
    )


# --- network checks -----------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def https_proxy_for(host: str) -> str | None:
    """The proxy the SuperNode's HTTP client (httpx, trust_env) would use for `host`."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _connection(
    host: str, port: int, proxy: str | None, timeout_s: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    """A connection to host:port, tunnelled through `proxy` with HTTP CONNECT when one is set
    (what the SuperNode's HTTP client does behind a hospital proxy); HTTPS when `tls` is given,
    else plain TCP, which is how the reachability check tells the network from TLS."""
    target, target_port = host, port
    headers = {"Host": f"{host}:{port}"}  # Python 3.11's CONNECT omits it; strict proxies need it
    if proxy:
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target, target_port = url.hostname or "", url.port or 3128
        if url.username:
            cred = (
                f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password or '')}"
            )
            headers["Proxy-Authorization"] = f"Basic {base64.b64encode(cred.encode()).decode()}"
    if tls is None:
        conn = http.client.HTTPConnection(target, target_port, timeout=timeout_s)
    else:
        conn = http.client.HTTPSConnection(target, target_port, timeout=timeout_s, context=tls)
    if proxy:
        conn.set_tunnel(host, port, headers=headers)
    return conn


def _tcp_failure(
    host: str, port: int, proxy: str | None, timeout_s: float, exc: Exception
) -> Check:
    via = f" via proxy {proxy}" if proxy else ""
    fix = (
        f"allow outbound TCP to {host}:{port} in the hospital firewall, or set "
        "HTTPS_PROXY (see deploy/README.md, 'Proxy')"
    )
    if isinstance(exc, TimeoutError):
        detail = f"no answer from {host}:{port}{via} within {timeout_s:g} s"
    elif proxy and str(exc).startswith("Tunnel connection failed"):  # http.client's words
        detail = f"proxy {proxy} refused to open a tunnel to {host}:{port} ({exc})"
        fix = f"ask the proxy's administrators to allow HTTPS (CONNECT) to {host}:{port}"
    else:
        detail = f"cannot connect to {host}:{port}{via}: {exc}"
    return Check("tcp", "fail", detail, fix)


def _unverified_certificate(
    make: Callable[[ssl.SSLContext], http.client.HTTPConnection],
) -> x509.Certificate | None:
    """The server's certificate fetched without verifying it, to say why verification failed."""
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loose.check_hostname, loose.verify_mode = False, ssl.CERT_NONE
    conn = make(loose)
    try:
        conn.connect()
        return x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def check_superlink(address: str, ca_path: Path, timeout_s: float = 5.0) -> list[Check]:
    """DNS, TCP, TLS (chain + name + expiry), HTTP and clock skew against the SuperLink."""
    try:
        host, port = split_address(address)
    except ValueError as exc:
        return [
            Check(
                "superlink",
                "fail",
                str(exc),
                "pass --superlink HOST:PORT (as given by the coordinator)",
            )
        ]
    proxy = https_proxy_for(host)
    checks: list[Check] = []

    if proxy:
        checks.append(Check("dns", "skip", f"{host} is resolved by the proxy {proxy}"))
    else:
        try:
            addrs = sorted(
                {ai[4][0] for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
            )
            checks.append(Check("dns", "ok", f"{host} -> {', '.join(addrs)}"))
        except socket.gaierror as exc:
            checks.append(
                Check(
                    "dns",
                    "fail",
                    f"{host}: does not resolve ({exc.strerror})",
                    "check the name with the coordinator and the site's DNS server "
                    "(or add it to /etc/hosts)",
                )
            )
            return checks

    def connection(tls: ssl.SSLContext | None) -> http.client.HTTPConnection:
        return _connection(host, port, proxy, timeout_s, tls)

    probe = connection(None)
    try:
        probe.connect()
    except (OSError, http.client.HTTPException) as exc:
        checks.append(_tcp_failure(host, port, proxy, timeout_s, exc))
        return checks
    finally:
        probe.close()
    checks.append(
        Check("tcp", "ok", f"connected to {host}:{port}" + (f" via proxy {proxy}" if proxy else ""))
    )

    if not ca_path.exists():
        checks.append(Check("tls", "skip", f"no CA certificate at {ca_path} to verify against"))
        return checks
    ctx = ssl.create_default_context(cafile=str(ca_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    renew = (
        "the coordinator must renew the SuperLink certificate "
        "(deploy/CERTIFICATES.md, 'Rotating the SuperLink certificate')"
    )
    conn = connection(ctx)
    try:
        conn.connect()
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        cert = _unverified_certificate(connection)
        checks.append(_explain_verify_failure(host, port, exc, cert, ca_path, renew))
        return checks
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        checks.append(
            Check(
                "tls",
                "fail",
                f"TLS handshake with {host}:{port} failed: {exc}",
                "is this the SuperLink's (or its proxy's) HTTPS port? A proxy doing "
                "TLS inspection must exempt this host",
            )
        )
        return checks
    with contextlib.closing(conn):
        cert = x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
        checks.append(
            Check(
                "tls",
                "ok",
                f"{conn.sock.version()}, certificate for {host} issued by "
                f"{cert.issuer.rfc4514_string()} (verified against {ca_path.name})",
            )
        )
        checks.append(_expiry(cert, "SuperLink certificate", "superlink-cert", renew))
        t0 = time.time()
        try:
            conn.request("GET", "/health", headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            checks.append(
                Check(
                    "http",
                    "fail",
                    f"no HTTP answer from {host}:{port}: {exc}",
                    "check that the coordinator's proxy forwards to a running SuperLink",
                )
            )
            return checks
        t1 = time.time()
    status = response.status
    detail = f"GET /health -> HTTP {status}"
    if status == 200:
        checks.append(Check("http", "ok", detail + " (SuperLink healthy)"))
    elif status in (502, 503, 504):
        checks.append(
            Check(
                "http",
                "fail",
                detail + " (the proxy answers, the SuperLink behind it does not)",
                "ask the coordinator to start the SuperLink (busgen-server start)",
            )
        )
    else:
        checks.append(Check("http", "ok", detail + " (server answers; /health not exposed)"))
    checks.append(_clock_check(response.getheader("Date"), (t0 + t1) / 2, cert))
    return checks


def _explain_verify_failure(
    host: str,
    port: int,
    exc: ssl.SSLCertVerificationError,
    cert: x509.Certificate | None,
    ca_path: Path,
    renew: str,
) -> Check:
    """Say *why* verification failed: expired, wrong CA, or wrong name."""
    reason = exc.verify_message or str(exc)
    if "expired" in reason and cert is not None:
        return Check(
            "tls",
            "fail",
            f"the SuperLink certificate of {host}:{port} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}",
            renew,
        )
    if "expired" in reason:
        return Check("tls", "fail", f"certificate of {host}:{port} has expired", renew)
    if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
        return Check(
            "tls",
            "fail",
            f"the certificate is not valid for {host} ({reason})",
            "use the exact host name the coordinator gave you, or ask them to re-issue "
            f"the certificate with `busgen-server init-ca --host {host}`",
        )
    issuer = f" (server certificate issued by {cert.issuer.rfc4514_string()})" if cert else ""
    return Check(
        "tls",
        "fail",
        f"{host}:{port} is not signed by the consortium CA in {ca_path}: {reason}{issuer}",
        "get the current ca.pem from the coordinator; if a hospital proxy inspects TLS, "
        "exempt this host from inspection",
    )


def _clock_check(date_header: str | None, local_mid: float, cert: x509.Certificate) -> Check:
    if not date_header:
        if _utcnow() < cert.not_valid_before_utc:
            return Check(
                "clock",
                "fail",
                "local clock is before the SuperLink certificate's start of validity",
                "enable NTP time synchronisation on this machine",
            )
        return Check(
            "clock",
            "warn",
            "the server sent no Date header: skew not measured (only "
            "checked that the clock is after the certificate's start)",
            "make sure NTP is enabled (timedatectl status)",
        )
    server = email.utils.parsedate_to_datetime(date_header).timestamp() + 0.5  # 1 s resolution
    skew = local_mid - server  # > 0: this site is ahead of the SuperLink
    detail = (
        f"this machine is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the SuperLink"
    )
    fix = "enable NTP time synchronisation (timedatectl set-ntp true) on this machine"
    if skew > CLOCK_AHEAD_FAIL_S or skew < -CLOCK_BEHIND_FAIL_S:
        return Check(
            "clock",
            "fail",
            detail + " (the SuperLink will refuse this node's signed "
            "requests: it accepts at most 5 s ahead, 305 s behind)",
            fix,
        )
    if abs(skew) > CLOCK_WARN_S:
        return Check("clock", "warn", detail, fix)
    return Check("clock", "ok", detail)


# --- entry point --------------------------------------------------------------------------


def run_checks(
    site: SiteDir,
    superlink: str | None,
    ca_path: Path | None = None,
    timeout_s: float = 5.0,
    gpu: bool = True,
) -> list[Check]:
    """All checks in the order IT should read them."""
    ca_path = Path(ca_path) if ca_path else site_ca(site)
    checks = [check_workdir(site), check_ca(ca_path)]
    if superlink:
        checks += check_superlink(superlink, ca_path, timeout_s)
    else:
        checks.append(
            Check(
                "superlink",
                "skip",
                "no SuperLink address given",
                "pass --superlink HOST:PORT or set BUSGEN_SUPERLINK",
            )
        )
    checks += [check_node_key(site), check_registration(site)]
    if gpu:
        checks.append(check_gpu())
    checks += [
        check_disk(site),
        check_policy(site),
        check_chain(site.log, "site-log"),
        check_chain(site.ledger, "ledger"),
        check_approval(site),
    ]
    return checks


def failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)
