"""`busgen-site`: the hospital site's tool (ingest, de-identify, train, release, operate)."""

from common.cli import make_group

main = make_group(
    "busgen-site",
    "Hospital site tool: ingest and de-identify DICOM, train DP adapters, audit and sign releases.",
    "client.commands",
)
