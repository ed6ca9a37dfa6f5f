"""`busgen-server status`: the job's progress and per-site table (epsilon, rounds, failures)."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("status")
@click.option("--state", "state_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def status_cmd(state_dir: Path, as_json: bool) -> None:
    """Show the run state written after every round."""
    from rich.console import Console
    from rich.table import Table

    from server.run_state import RunState

    summary = RunState.load(state_dir).summary()
    if as_json:
        echo_json(summary)
        return
    eps = summary["max_epsilon"]
    console = Console()
    console.print(
        f"job {summary['job_id']}: {summary['status']}, round "
        f"{summary['completed_rounds']}/{summary['rounds']}, max epsilon over sites "
        f"{'-' if eps is None else f'{eps:.2f}'}"
    )
    if summary["error"]:
        console.print(f"[red]{summary['error']}[/red]")
    table = Table(
        "site",
        "node",
        "rounds joined",
        "failures",
        "epsilon (job)",
        "epsilon (site total)",
        "delta",
        "val loss",
        "last error",
    )
    for s in summary["sites"].values():
        table.add_row(
            s["site_id"],
            str(s["node_id"]),
            str(s["rounds_joined"]),
            str(s["failures"]),
            "-" if s["epsilon"] is None else f"{s['epsilon']:.2f}",
            "-" if s["site_epsilon"] is None else f"{s['site_epsilon']:.2f}",
            "-" if s["delta"] is None else f"{s['delta']:.1e}",
            "-" if s["val_loss"] is None else f"{s['val_loss']:.4f}",
            (s["last_error"] or "")[:60],
        )
    console.print(table)


commands = [status_cmd]
