"""`busgen-site doctor`: one line per check (network, certificates, clock, keys, GPU, disk,
policy, logs, approval), each with a fix; exit 1 when any check fails."""

from pathlib import Path

import click

from common.cli import echo_json

STYLE = {
    "ok": ("OK", "green"),
    "warn": ("WARN", "yellow"),
    "fail": ("FAIL", "red"),
    "skip": ("SKIP", "blue"),
}


@click.command("doctor")
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Site work directory.",
)
@click.option(
    "--superlink",
    envvar="BUSGEN_SUPERLINK",
    default=None,
    metavar="HOST:PORT",
    help="The consortium's fleet endpoint (env: BUSGEN_SUPERLINK).",
)
@click.option(
    "--ca",
    "ca_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Consortium CA certificate (default: WORKDIR/keys/ca.pem).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for each network step.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor_cmd(
    workdir: Path, superlink: str | None, ca_path: Path | None, timeout_s: float, as_json: bool
) -> None:
    """Check that this site can join the consortium and say what to fix."""
    from client.doctor import failed, run_checks
    from client.workdir import SiteDir

    checks = run_checks(SiteDir(workdir), superlink, ca_path, timeout_s)
    if as_json:
        echo_json([c.to_dict() for c in checks])
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            label, colour = STYLE[c.status]
            line = (
                f"{click.style(f'{label:4s}', fg=colour, bold=True)}  {c.name:{width}s}  {c.detail}"
            )
            if c.fix and c.status in ("warn", "fail"):
                line += f"  -> fix: {c.fix}"
            click.echo(line)
    if failed(checks):
        raise SystemExit(1)


commands = [doctor_cmd]
