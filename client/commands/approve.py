"""`busgen-site approve`: approve, list and revoke the app versions this site runs (default deny)."""

from pathlib import Path

import click

from common.cli import echo_json


@click.command("approve")
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Site work directory.",
)
@click.argument("app_hash", required=False)
@click.option("--note", default="", help="Why / after which review (kept in the site log).")
@click.option(
    "--revoke",
    "revoke_hash",
    metavar="HASH",
    default=None,
    help="Withdraw the approval of HASH; its jobs are refused from now on.",
)
@click.option("--list", "list_", is_flag=True, help="List approved and revoked app hashes.")
@click.option(
    "--show-installed",
    is_flag=True,
    help="Print the app hash of the busgen-fed version installed here and exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def approve_cmd(
    workdir: Path,
    app_hash: str | None,
    note: str,
    revoke_hash: str | None,
    list_: bool,
    show_installed: bool,
    as_json: bool,
) -> None:
    """Approve APP_HASH: jobs of that busgen-fed version may then train on this site's data.

    Compare the hash with the one the coordinator announced and with
    `--show-installed` before approving.
    """
    from client.approval import approve, installed_app_hash, is_approved, load_approvals, revoke
    from client.workdir import SiteDir

    site = SiteDir(workdir)
    chosen = sum([bool(app_hash), bool(revoke_hash), list_, show_installed])
    if chosen != 1:
        raise click.UsageError(
            "give exactly one of APP_HASH, --revoke HASH, --list, --show-installed"
        )
    if show_installed:
        value = installed_app_hash()
        if as_json:
            echo_json({"app_hash": value, "approved": is_approved(site, value)})
        else:
            click.echo(value)
        return
    if list_:
        apps = load_approvals(site)
        if as_json:
            echo_json(apps)
            return
        installed = installed_app_hash()
        if not apps:
            click.echo("no app approved: every job is refused (default deny)")
        for value, row in sorted(apps.items(), key=lambda kv: kv[1]["approved_at"]):
            mark = " (installed)" if value == installed else ""
            when = row.get("revoked_at") if row["status"] == "revoked" else row["approved_at"]
            click.echo(f"{row['status']:8s} {value}{mark}  {when}  {row.get('note', '')}")
        return
    if revoke_hash:
        row = revoke(site, revoke_hash, note)
        message = f"revoked {revoke_hash.strip().lower()}"
    else:
        row = approve(site, app_hash, note)
        message = f"approved {app_hash.strip().lower()}"
    if as_json:
        echo_json(row)
    else:
        click.echo(f"{message} (site log entry {row['log_seq']})")


commands = [approve_cmd]
