"""`busgen-server register-site`: admit a site's node key to the running SuperLink."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("register-site")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The site id (as in its site.json).")
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Coordinator state directory (where `busgen-server start` runs).",
)
@click.option("--json", "as_json", is_flag=True)
def register_site_cmd(public_key: Path, name: str, state_dir: Path, as_json: bool) -> None:
    """Register PUBLIC_KEY (the site's keys/node_key.pub) under NAME; prints the node id."""
    from server.federation import register_site

    node_id = register_site(state_dir, public_key, name)
    if as_json:
        echo_json({"site": name, "node_id": node_id})
    else:
        click.echo(f"registered {name}: node id {node_id}")


commands = [register_site_cmd]
