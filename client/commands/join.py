"""`busgen-site join`: run the site's SuperNode (outbound connection only) until stopped."""

from pathlib import Path

import click


@click.command("join")
@click.option("--superlink", required=True, help="HOST:PORT of the consortium's fleet endpoint.")
@click.option(
    "--ca",
    "ca_cert",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The consortium CA certificate (ca.pem).",
)
@click.option("--workdir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--base",
    "base_dir",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The site's copy of the base model (default: WORKDIR/base).",
)
@click.option(
    "--runtime-port",
    default=9094,
    show_default=True,
    type=int,
    help="Local (127.0.0.1) port of the SuperNode's runtime API.",
)
def join_cmd(
    superlink: str, ca_cert: Path, workdir: Path, base_dir: Path | None, runtime_port: int
) -> None:
    """Connect to the consortium and serve training rounds."""
    from client.supernode import start_supernode
    from common.processes import supervise

    node = start_supernode(workdir, superlink, ca_cert, runtime_port, base_dir)
    click.echo(f"SuperNode running (pid {node.proc.pid}); log {node.log_path}")
    supervise(node, hint="refused by the SuperLink? key not registered?")


commands = [join_cmd]
