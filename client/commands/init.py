"""`busgen-site init`: create the site's work directory, keys and policy template."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("init")
@click.option("--site-id", required=True, help="Lowercase id, e.g. hospital-a.")
@click.option("--workdir", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def init_cmd(site_id: str, workdir: Path, as_json: bool) -> None:
    """Create (or complete) the work directory; existing keys are never replaced."""
    from client.site_init import init_site
    from client.workdir import SiteDir

    done = init_site(site_id, workdir)
    if as_json:
        echo_json(done)
        return
    for item, what in done.items():
        click.echo(f"{what:8s} {item}")
    click.echo(
        f"Send {SiteDir(workdir).node_public_key} to the coordinator (busgen-server register-site)."
    )


commands = [init_cmd]
