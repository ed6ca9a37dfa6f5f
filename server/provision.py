"""Coordinator-side provisioning: the consortium CA, the SuperLink certificate, the site registry.

The CA signs one certificate: the SuperLink's. Sites trust it through `ca.pem` and never get a
client certificate; they prove who they are with their node key (SuperNode authentication),
which the coordinator registers by public key. Private keys are written 0600 and never
overwritten, so re-running `init-ca` cannot silently invalidate every site's trust anchor.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import FederationError
from common.files import atomic_write_bytes
from common.keyfiles import write_private

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CaDir:
    """Files of the coordinator's PKI directory (`busgen-server init-ca --out DIR`)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "superlink.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "superlink.key"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def init_ca(
    out_dir: Path,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    days: int = 825,
    consortium: str = "busgen-fed consortium",
) -> CaDir:
    """Create the CA and a SuperLink server certificate whose SANs cover `hosts`.

    Idempotent: an existing CA is kept (its key is never regenerated); the server certificate
    is only created when missing.
    """
    ca = CaDir(out_dir)
    ca.root.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    if not ca.ca_cert.exists():
        ca_key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, consortium),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{consortium} CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA384())
        )
        write_private(ca.ca_key, _pem_key(ca_key))
        atomic_write_bytes(ca.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    if not ca.server_cert.exists():
        ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP384R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA384())
        )
        if ca.server_key.exists():
            ca.server_key.unlink()  # a key without its certificate is an aborted earlier run
        write_private(ca.server_key, _pem_key(key))
        atomic_write_bytes(ca.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return ca


def server_cert_hosts(ca: CaDir) -> list[str]:
    """The SANs of the SuperLink certificate (for `status` and error messages)."""
    cert = x509.load_pem_x509_certificate(ca.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def check_node_public_key(path: Path) -> str:
    """Read an OpenSSH public key and check it is the EC key type Flower accepts."""
    try:
        data = Path(path).read_bytes()
        key = serialization.load_ssh_public_key(data)
    except OSError as exc:
        raise FederationError(f"{path}: cannot read public key: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise FederationError(f"{path}: not an OpenSSH public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise FederationError(
            f"{path}: SuperNode keys must be EC (P-384), got {type(key).__name__}"
        )
    return data.decode().strip()


class SiteRegistry:
    """`sites.json` in the coordinator's state dir: site name -> node id and public key."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise FederationError(f"{self.path}: site registry is not valid JSON: {exc}") from exc

    def add(self, name: str, node_id: int, public_key: str) -> None:
        sites = self.load()
        sites[name] = {
            "node_id": int(node_id),
            "public_key": public_key,
            "registered_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        atomic_write_bytes(self.path, json.dumps(sites, indent=2, sort_keys=True).encode())

    def names_by_node(self) -> dict[int, str]:
        return {int(v["node_id"]): k for k, v in self.load().items()}
