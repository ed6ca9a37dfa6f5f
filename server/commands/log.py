"""`busgen-server log verify|show`: every hash-chained log under the coordinator's state."""

from pathlib import Path

from common.log_commands import make_log_group


def _server_logs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jsonl") if _is_chain(p))


def _is_chain(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline()
    return b'"prev"' in first and b'"hash"' in first


commands = [make_log_group(_server_logs, "--state", "The coordinator's state directory.")]
