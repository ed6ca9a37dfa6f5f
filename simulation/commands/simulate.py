"""`busgen-site simulate`: write a simulated hospital PACS export (DICOM with PHI + labels.csv)."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("simulate")
@click.option("--site", required=True, help="Site name (seeds the simulated hospital).")
@click.option("--patients", required=True, type=click.IntRange(min=1), help="Number of patients.")
@click.option(
    "--device",
    default="device-a",
    show_default=True,
    help="Scanner profile: device-a, device-b or device-c.",
)
@click.option(
    "--malignant-rate",
    default=0.35,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of patients with a malignant lesion.",
)
@click.option(
    "--normal-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of patients without a lesion.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Random seed (output is deterministic)."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Export directory (DICOM/ tree and labels.csv).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def simulate(
    site: str,
    patients: int,
    device: str,
    malignant_rate: float,
    normal_rate: float,
    seed: int,
    out_dir: Path,
    as_json: bool,
) -> None:
    """Write what this hospital's PACS export would look like: DICOM ultrasound objects with
    realistic fake PHI (header and burned-in banner) and the labels.csv the hospital would add.

    This is test and demo data: every name, ID and date is invented.
    """
    from simulation.phantom.dicom import write_pacs_export

    result = write_pacs_export(
        out_dir, site, patients, device, malignant_rate, normal_rate, seed, progress=not as_json
    )
    summary = {
        "out": str(out_dir),
        "files": len(result.files),
        "patients": patients,
        "labels": str(result.labels),
        "pathologies": {
            p: len({r["file"] for r in result.rows if r["pathology"] == p})
            for p in ("normal", "benign", "malignant")
        },
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote {summary['files']} DICOM files for {patients} patients to {out_dir}")
    click.echo(f"labels: {result.labels}")


commands = [simulate]
