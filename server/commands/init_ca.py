"""`busgen-server init-ca`: the consortium CA and the SuperLink's TLS certificate."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("init-ca")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="PKI directory (e.g. STATE/pki). Existing keys are kept.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Name or IP the sites use to reach the SuperLink (repeatable); "
    "localhost, 127.0.0.1 and ::1 are always included.",
)
@click.option("--json", "as_json", is_flag=True, help="Print paths as JSON.")
def init_ca_cmd(out_dir: Path, hosts: tuple[str, ...], as_json: bool) -> None:
    """Create the CA (ca.pem: give it to every site) and the SuperLink certificate."""
    from server.provision import DEFAULT_HOSTS, init_ca, server_cert_hosts

    ca = init_ca(out_dir, hosts=tuple(dict.fromkeys(DEFAULT_HOSTS + hosts)))
    info = {
        "ca_cert": str(ca.ca_cert),
        "server_cert": str(ca.server_cert),
        "server_hosts": server_cert_hosts(ca),
    }
    if as_json:
        echo_json(info)
    else:
        click.echo(f"CA certificate (give to sites): {ca.ca_cert}")
        click.echo(f"SuperLink certificate: {ca.server_cert} for {', '.join(info['server_hosts'])}")


commands = [init_ca_cmd]
