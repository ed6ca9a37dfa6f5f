"""`busgen-site log verify|show`: the site's event log and privacy ledger."""

from pathlib import Path

from client.workdir import SiteDir
from common.log_commands import make_log_group


def _site_logs(root: Path) -> list[Path]:
    site = SiteDir(root)
    return [p for p in (site.log, site.ledger) if p.exists()]


commands = [make_log_group(_site_logs, "--workdir", "The site's work directory.")]
