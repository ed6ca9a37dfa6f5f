"""`busgen-site import FORMAT DATASET_DIR --workdir SITE_DIR`: public datasets into the store."""

from pathlib import Path

import click

from common.cli import echo_json

FORMAT_NAMES = ("busi", "bus-bra", "breast", "bus-uclm")


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMAT_NAMES))
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The site's work directory.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print counts per class and skipped items as JSON."
)
def import_data(fmt: str, dataset_dir: Path, workdir: Path, as_json: bool) -> None:
    """Import a public breast-ultrasound dataset (in its published layout) into the store."""
    from client.importers import import_dataset
    from client.workdir import SiteDir

    summary = import_dataset(fmt, dataset_dir, SiteDir(workdir))
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"imported {sum(summary['imported'].values())} images {summary['imported']} "
        f"({summary['already_in_store']} already in the store, {len(summary['skipped'])} "
        f"skipped); store now holds {summary['store_total']}"
    )
    for s in summary["skipped"]:
        click.echo(f"  skipped {s['item']}: {s['reason']}")


commands = [import_data]
