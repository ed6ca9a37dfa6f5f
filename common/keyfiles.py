"""Key files a site and the coordinator write: private keys that are never overwritten, and
the SuperNode authentication key pair."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import FederationError
from common.files import atomic_write_bytes


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically with mode 0600; refuse to replace an existing one."""
    path = Path(path)
    try:
        atomic_write_bytes(path, data, 0o600, replace=False)
    except FileExistsError as exc:
        raise FederationError(
            f"{path}: already exists; refusing to overwrite a private key"
        ) from exc


def generate_node_key(private_path: Path, public_path: Path) -> bool:
    """Write an EC P-384 OpenSSH key pair for SuperNode authentication.

    Returns False (and changes nothing) when the private key exists already.
    """
    if Path(private_path).exists():
        return False
    key = ec.generate_private_key(ec.SECP384R1())
    write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    atomic_write_bytes(
        public_path,
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n",
    )
    return True
