"""`log verify` / `log show`, shared by busgen-site and busgen-server.

Both ends keep hash-chained JSON-lines logs (common.chainlog). Verification walks every chain
and names the first line that was edited, removed or reordered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from common.chainlog import ChainLog
from common.cli import echo_json
from common.errors import VerificationError


def verify_logs(paths: list[Path]) -> list[dict]:
    """Verify each chain log; returns one result row per file (ok, entries, error)."""
    rows = []
    for path in paths:
        try:
            rows.append({"log": str(path), "ok": True, "entries": len(ChainLog(path).verify())})
        except VerificationError as exc:
            rows.append({"log": str(path), "ok": False, "error": str(exc)})
    return rows


def make_log_group(
    find_logs: Callable[[Path], list[Path]], dir_option: str, dir_help: str
) -> click.Group:
    """A `log` command group whose logs are found under the directory given by `dir_option`."""

    @click.group(name="log", help="Verify and show the tamper-evident (hash-chained) logs.")
    def group() -> None:
        pass

    @group.command(
        name="verify", help="Check every log's hash chain; exit 4 at the first broken line."
    )
    @click.option(
        dir_option,
        "root",
        required=True,
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help=dir_help,
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def verify(root: Path, as_json: bool) -> None:
        logs = find_logs(root)
        if not logs:
            raise VerificationError(f"{root}: no logs found to verify")
        rows = verify_logs(logs)
        if as_json:
            echo_json(rows)
        else:
            for row in rows:
                status = (
                    f"ok ({row['entries']} entries)" if row["ok"] else f"BROKEN: {row['error']}"
                )
                click.echo(f"{row['log']}: {status}")
        if not all(r["ok"] for r in rows):
            raise SystemExit(VerificationError.exit_code)

    @group.command(name="show", help="Print a log's entries after verifying its chain.")
    @click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
    @click.option("--last", type=int, default=0, help="Only the last N entries.")
    def show(path: Path, last: int) -> None:
        entries = ChainLog(path).verify()
        echo_json(entries[-last:] if last else entries)

    return group
