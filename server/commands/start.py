"""`busgen-server start`: the SuperLink, with TLS, node authentication and a database.

It binds to loopback only. Flower 1.42's Control API (submit runs, register nodes) shares the
port with the Fleet API and has no authentication, so sites must reach the SuperLink through
a reverse proxy that forwards `/v1/fleet/*` only (deploy/superlink-proxy.md).
"""

import ipaddress
from pathlib import Path

import click

from common.errors import FederationError


@click.command("start")
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Coordinator state directory (database, logs, site registry).",
)
@click.option(
    "--ca",
    "ca_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="PKI directory from init-ca (default: STATE/pki).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to bind (sites connect through the fleet-only proxy).",
)
@click.option("--port", default=9093, show_default=True, type=int)
def start_cmd(state_dir: Path, ca_dir: Path | None, host: str, port: int) -> None:
    """Run the SuperLink in the foreground until interrupted."""
    from common.processes import supervise
    from server.provision import CaDir
    from server.superlink import start_superlink

    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise FederationError(
            f"--host {host}: the SuperLink must bind to loopback; its "
            "Control API is unauthenticated. Expose /v1/fleet/* to sites "
            "through the reverse proxy in deploy/superlink-proxy.md"
        )
    ca = CaDir(ca_dir or Path(state_dir) / "pki")
    if not ca.server_cert.exists():
        raise FederationError(
            f"{ca.server_cert}: missing; run `busgen-server init-ca --out {ca.root}`"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    link = start_superlink(state_dir, ca, port, host)
    click.echo(f"SuperLink on https://{host}:{port} (pid {link.proc.pid}); log {link.log_path}")
    supervise(link)


commands = [start_cmd]
