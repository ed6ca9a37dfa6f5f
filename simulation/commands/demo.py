"""`busgen-server demo`: the whole consortium simulated on one machine (the main job)."""

from pathlib import Path

import click

from common.cli import config_options


@click.command(
    name="demo",
    help="Simulate a consortium end to end: sites, de-identification, "
    "pretraining (cached), federated DP rounds over TLS, audited signed releases, "
    "catalog, evidence report. Re-running resumes after the last finished stage.",
)
@config_options
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Run directory (RUN_DIR)."
)
def demo(config_path: str, overrides: tuple[str, ...], out: Path) -> None:
    from common.config import load_config
    from simulation.demo import run_demo

    run_demo(out, load_config(config_path, overrides))


commands = [demo]
