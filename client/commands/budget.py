"""`busgen-site budget`: the privacy ledger and what is left of the site's budget."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import echo_json


@click.command("budget")
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Site work directory.",
)
@click.option(
    "--accountant",
    type=click.Choice(["prv", "rdp"]),
    default="prv",
    show_default=True,
    help="Accountant that composes the whole ledger.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Every entry's sampling rate, noise multiplier and steps, with the total.",
)
def budget(workdir: Path, accountant: str, as_json: bool) -> None:
    """Show the privacy ledger (verified hash chain) and the remaining budget.

    The total epsilon is recomputed by the accountant over every recorded block of DP-SGD
    steps (never by adding epsilons), at the smallest delta any block used.
    """
    from client.ledger import PrivacyLedger
    from client.workdir import SiteDir
    from common.privacy import load_policy

    site = SiteDir(workdir)
    policy = load_policy(site.policy) if site.policy.exists() else None
    summary = PrivacyLedger(site.ledger).summary(accountant, policy)
    if as_json:
        echo_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "seq",
        "time",
        "job",
        "round",
        "sample rate",
        "noise mult.",
        "steps",
        "delta",
        title=f"privacy ledger {site.ledger} (unit: patient)",
    )
    for e in summary["entries"]:
        table.add_row(
            str(e["seq"]),
            e["time"],
            e["job_id"],
            str(e["round"]),
            f"{e['sample_rate']:.4f}",
            f"{e['noise_multiplier']:.3f}",
            str(e["steps"]),
            f"{e['delta']:.1e}",
        )
    console = Console()
    console.print(table)
    delta = summary["delta"]
    console.print(
        f"total: epsilon {summary['total_epsilon']:.3f} at delta "
        f"{delta if delta is None else f'{delta:.1e}'} ({accountant}), "
        f"{summary['total_steps']} steps"
    )
    if policy is not None:
        console.print(
            f"policy: total epsilon cap {policy.max_epsilon_total:g}, per job "
            f"{policy.max_epsilon_per_job:g}; headroom "
            f"{summary['remaining_epsilon_total']:.3f} (the accountant composes jobs, "
            "so a new job usually adds less than its own epsilon)"
        )


commands = [budget]
