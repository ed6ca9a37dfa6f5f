"""`busgen-release verify|show`: check and inspect a bundle on disk."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import echo_json


@click.command()
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    "trust_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trust file with the site signing keys you accept.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verified manifest.")
def verify(bundle_dir: Path, trust_file: Path, as_json: bool) -> None:
    """Check signature, signer, every file hash and the exact file set; exit 0 only if all hold."""
    from common.release.bundle import verify_bundle

    manifest = verify_bundle(bundle_dir, trust_file)
    if as_json:
        echo_json(manifest)
    else:
        click.echo(
            f"{bundle_dir}: OK ({len(manifest['files'])} files, {manifest['num_images']} images, "
            f"site {manifest['site_id']}, key {manifest['key_id'][:16]})"
        )


@click.command()
@click.argument("bundle_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def show(bundle_dir: Path) -> None:
    """Print the dataset card and the audit summary (does not verify; use `verify`)."""
    import json

    from rich.console import Console
    from rich.markdown import Markdown
    from rich.table import Table

    from common.errors import DataError
    from common.release.bundle import audit_summary, read_manifest

    try:
        card = (bundle_dir / "README.md").read_text(encoding="utf-8")
        audit = json.loads((bundle_dir / "audit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{bundle_dir}: not a readable release bundle ({exc})") from exc
    manifest = read_manifest(bundle_dir)
    console = Console()
    console.print(Markdown(card))
    table = Table(
        "audit summary",
        "value",
        title=f"site {manifest.get('site_id')}, "
        f"{manifest.get('num_images')} images, created {manifest.get('created')}",
    )
    for key, value in audit_summary(audit).items():
        table.add_row(str(key), str(value))
    console.print(table)


commands = [verify, show]
