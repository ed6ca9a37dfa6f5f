"""`busgen-site deid INPUT_DIR OUTPUT_DIR`: de-identify a PACS export (headers and pixels)."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("deid")
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(path_type=Path),
    help="The site secret keying pseudonyms and UIDs (SITE_DIR/secret.key).",
)
@click.option(
    "--private-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site-private log linking outputs to original paths (keep it at the site).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report counts as JSON.")
def deid(
    input_dir: Path, output_dir: Path, secret_file: Path, private_log: Path | None, as_json: bool
) -> None:
    """De-identify every DICOM file under INPUT_DIR into OUTPUT_DIR (PS3.15 + Clean Pixel Data).

    Unusable inputs are quarantined (listed in OUTPUT_DIR/deid-report.json, never copied); the
    exit code is 0 unless the run itself failed.
    """
    from rich.progress import Progress

    from client.deid import run_deid

    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("de-identifying", total=None)
        report = run_deid(
            input_dir,
            output_dir,
            secret_file,
            private_log,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    if as_json:
        echo_json({"counts": report["counts"], "quarantine_reasons": report["quarantine_reasons"]})
        return
    c = report["counts"]
    click.echo(
        f"de-identified {c['deidentified']} of {c['inputs']} files "
        f"({c['patients']} patients, {c['text_boxes_blanked']} text boxes blanked); "
        f"quarantined {c['quarantined']}"
    )
    for reason, n in report["quarantine_reasons"].items():
        click.echo(f"  quarantined {n}: {reason}")
    click.echo(f"report: {output_dir / 'deid-report.html'}")


commands = [deid]
