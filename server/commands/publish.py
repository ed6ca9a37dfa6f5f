"""`busgen-server publish` and `busgen-server trust`: admit signed site bundles to the catalog."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import echo_json


@click.command()
@click.argument("bundle_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--catalog",
    "catalog_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Catalog directory (created if missing).",
)
@click.option(
    "--trust",
    "trust_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Consortium trust file with the sites' signing keys.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the catalog entry as JSON.")
def publish(bundle_dir: Path, catalog_dir: Path, trust_file: Path, as_json: bool) -> None:
    """Verify BUNDLE_DIR and add it to the catalog as the next version of its data set."""
    from server.catalog import Catalog

    entry = Catalog(catalog_dir).publish(bundle_dir, trust_file)
    if as_json:
        echo_json(entry)
    else:
        click.echo(
            f"published {entry['release_id']} (site {entry['site_id']}, "
            f"{entry['num_images']} images, archive sha256 {entry['archive']['sha256'][:16]}...)"
        )


@click.group()
def trust() -> None:
    """Manage the consortium trust file (site signing keys)."""


@trust.command("add")
@click.option(
    "--trust", "trust_file", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--site-id", required=True)
@click.option(
    "--public-key",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The site's signing public key (PEM, keys/signing_key.pub in its work dir).",
)
def trust_add(trust_file: Path, site_id: str, public_key: Path) -> None:
    """Trust a site's signing key."""
    from common.release.signing import add_trusted_key

    click.echo(f"trusted key {add_trusted_key(trust_file, site_id, public_key)} for site {site_id}")


@trust.command("revoke")
@click.option(
    "--trust", "trust_file", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--reason", default="", help="Recorded with the revocation.")
@click.argument("key_id")
def trust_revoke(trust_file: Path, key_id: str, reason: str) -> None:
    """Revoke a signing key (a unique prefix of its id is enough)."""
    from common.release.signing import revoke_key

    revoke_key(trust_file, key_id, reason)
    click.echo(f"revoked key {key_id}")


@trust.command("list")
@click.option(
    "--trust", "trust_file", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
def trust_list(trust_file: Path) -> None:
    """Show the trusted keys and their status."""
    from common.release.signing import load_trust

    for kid, entry in sorted(
        load_trust(trust_file)["keys"].items(), key=lambda kv: kv[1]["site_id"]
    ):
        click.echo(f"{kid}  {entry['site_id']:<16} {entry['status']}")


commands = [publish, trust]
