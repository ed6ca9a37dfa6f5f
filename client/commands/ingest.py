"""`busgen-site ingest DICOM_DIR --labels labels.csv --workdir SITE_DIR`."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("ingest")
@click.argument("dicom_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--labels",
    "labels_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="labels.csv keyed by accession_number (one row per lesion).",
)
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The site's work directory (created by `busgen-site init`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print counts as JSON.")
def ingest(dicom_dir: Path, labels_csv: Path, workdir: Path, as_json: bool) -> None:
    """De-identify a PACS export and add its labelled images to the site's training store.

    Re-running on the same export adds nothing; a new export adds its new images.
    """
    from rich.progress import Progress

    from client.ingest import ingest as run_ingest
    from client.workdir import SiteDir

    site = SiteDir(workdir)
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("ingesting", total=None)
        report = run_ingest(
            dicom_dir,
            labels_csv,
            site,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    summary = {
        "counts": report["counts"],
        "quarantine_reasons": report["quarantine_reasons"],
        "store": report["store"],
    }
    if as_json:
        echo_json(summary)
        return
    st = report["store"]
    click.echo(
        f"added {sum(st['added'].values())} images {st['added']} to {site.store} "
        f"(now {st['total']}); skipped {st['skipped']}; "
        f"quarantined {report['counts']['quarantined']} {report['quarantine_reasons']}"
    )


commands = [ingest]
