"""`busgen-server`: the consortium coordinator's tool (CA, SuperLink, rounds, catalog, demo)."""

from common.cli import make_group

main = make_group(
    "busgen-server",
    "Coordinator tool: provision sites, run federated rounds, publish and serve releases.",
    "server.commands",
)
