"""Start a site's Flower SuperNode (`busgen-site join`).

The SuperNode connects outward to the SuperLink over TLS and opens no port to the network: its
local Runtime API binds to 127.0.0.1. It authenticates with the site's node key, and its node
config carries only the absolute path of the work directory, from which the ClientApp reads the
store, policy and ledger (nothing site-specific travels in the run config).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from client.workdir import SiteDir
from common.errors import DataError
from common.flower_env import flower_env
from common.processes import ManagedProcess, flwr_bin, spawn


def site_ca_path(site: SiteDir) -> Path:
    return site.keys / "ca.pem"


def start_supernode(
    workdir: Path, superlink: str, ca_cert: Path, runtime_port: int, base_dir: Path | None = None
) -> ManagedProcess:
    """Launch `flower-supernode` for the site in `workdir`; returns once the process runs."""
    site = SiteDir(workdir)
    site_id = site.site_id()
    if not site.node_key.exists():
        raise DataError(f"{site.node_key}: node key missing; run `busgen-site init` first")
    ca_cert = Path(ca_cert).resolve()
    if not ca_cert.exists():
        raise DataError(f"{ca_cert}: CA certificate not found")
    local_ca = site_ca_path(site)
    if local_ca.resolve() != ca_cert:
        shutil.copyfile(ca_cert, local_ca)  # the site keeps the trust anchor it joined with
    node_config = f'workdir="{site.root}"'
    if base_dir is not None:
        node_config += f' base-dir="{Path(base_dir).resolve()}"'
    args = [
        flwr_bin("flower-supernode"),
        "--superlink",
        superlink,
        "--root-certificates",
        str(local_ca),
        "--auth-supernode-private-key",
        str(site.node_key),
        "--host",
        "127.0.0.1",
        "--port",
        str(runtime_port),
        "--node-config",
        node_config,
    ]
    env = flower_env(site.flwr_home)
    return spawn(
        f"supernode {site_id}", args, env, site.root / "logs" / "supernode.log", cwd=site.root
    )
