"""`busgen-release list|terms|fetch`: talk to a consortium release catalog."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import echo_json


def catalog_options(func):
    """--catalog URL, --token, --ca; also from BUSGEN_CATALOG / BUSGEN_TOKEN / BUSGEN_CA."""
    func = click.option(
        "--ca",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        envvar="BUSGEN_CA",
        help="CA certificate to trust for the catalog (PEM).",
    )(func)
    func = click.option(
        "--token",
        required=True,
        envvar="BUSGEN_TOKEN",
        help="Your access token (better: set BUSGEN_TOKEN).",
    )(func)
    func = click.option(
        "--catalog",
        "url",
        required=True,
        envvar="BUSGEN_CATALOG",
        help="Catalog URL, e.g. https://catalog.example.org:8443.",
    )(func)
    return func


@click.command("list")
@catalog_options
@click.option("--json", "as_json", is_flag=True)
def list_releases(url: str, token: str, ca: Path | None, as_json: bool) -> None:
    """List published releases with their audit summaries."""
    from rich.console import Console
    from rich.table import Table

    from common.release.client import CatalogClient

    with CatalogClient(url, token, ca) as client:
        releases = client.releases()
    if as_json:
        echo_json(releases)
        return
    table = Table("release", "site", "images", "published", "audit summary")
    for entry in releases:
        summary = ", ".join(f"{k}={v}" for k, v in entry["audit_summary"].items())
        table.add_row(
            entry["release_id"],
            entry["site_id"],
            str(entry["num_images"]),
            entry["published"],
            summary,
        )
    Console().print(table)


@click.command()
@catalog_options
@click.option("--accept", is_flag=True, help="Accept the terms shown (recorded for your token).")
def terms(url: str, token: str, ca: Path | None, accept: bool) -> None:
    """Show the data use terms; with --accept, accept them (needed before fetch)."""
    from common.release.client import CatalogClient

    with CatalogClient(url, token, ca) as client:
        current = client.terms()
        click.echo(current["text"])
        if accept and not current["accepted"]:
            client.accept_terms(current["version"])
        state = "accepted" if accept or current["accepted"] else "not accepted yet (use --accept)"
        click.echo(f"terms version {current['version']}: {state}")


@click.command()
@click.argument("release_id")
@catalog_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to create for the bundle.",
)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Pinned trust file; default: the trust file the catalog serves.",
)
def fetch(
    release_id: str, url: str, token: str, ca: Path | None, out_dir: Path, trust_file: Path | None
) -> None:
    """Download RELEASE_ID, resuming an interrupted download, and verify it before keeping it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from common.release.client import CatalogClient, fetch_release

    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        ) as bar,
        CatalogClient(url, token, ca) as client,
    ):

        def progress(total: int):
            task = bar.add_task(release_id, total=total)
            return lambda n: bar.advance(task, n)

        manifest = fetch_release(client, release_id, out_dir, trust_file, progress)
    click.echo(
        f"{out_dir}: {release_id} verified ({manifest['num_images']} images, site "
        f"{manifest['site_id']}, signed by key {manifest['key_id'][:16]})"
    )


commands = [list_releases, terms, fetch]
