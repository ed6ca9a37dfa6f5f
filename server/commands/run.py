"""`busgen-server run`: submit a federated job to the running SuperLink and follow it."""

from pathlib import Path

import click

from common.cli import config_options, echo_json


@click.command("run")
@config_options
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Coordinator state directory (the one `busgen-server start` uses).",
)
@click.option(
    "--base",
    "base_dir",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The base model directory (its hash is sent to sites for checking).",
)
@click.option("--resume", is_flag=True, help="Continue the job in STATE from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True)
def run_cmd(
    config_path: str,
    overrides: tuple[str, ...],
    state_dir: Path,
    base_dir: Path,
    resume: bool,
    as_json: bool,
) -> None:
    """Run cfg.federation.rounds rounds of DP adapter training across the registered sites."""
    from common.config import load_config
    from server.federation import follow_job, job_timeout, submit_job, write_run_spec

    cfg = load_config(config_path, overrides)
    spec = write_run_spec(state_dir, cfg, base_dir, resume=resume)
    run_id = submit_job(state_dir)
    click.echo(f"job {spec['job_id']}: Flower run {run_id} submitted", err=True)

    def show(summary: dict) -> None:
        click.echo(
            f"  round {summary['completed_rounds']}/{summary['rounds']} "
            f"[{summary['status']}] max epsilon {summary['max_epsilon']}",
            err=True,
        )

    summary = follow_job(state_dir, run_id, job_timeout(cfg), show)
    if as_json:
        echo_json(summary)


commands = [run_cmd]
