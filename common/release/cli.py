"""`busgen-release`: the external researcher's tool (list, fetch, verify, show releases)."""

from common.cli import make_group

main = make_group(
    "busgen-release",
    "Researcher tool: list, download, verify and inspect released synthetic data sets.",
    "common.release.commands",
)
