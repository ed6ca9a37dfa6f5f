"""DICOM de-identification for breast ultrasound: PS3.15 allowlist profile and Clean Pixel Data.

`run_deid` is the library entry point of `busgen-site deid`; `Deidentifier` de-identifies single
datasets (ingest uses it through `deidentify_tree`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from client.deid.header import MalformedInput
from client.deid.keys import Pseudonymizer, load_secret
from client.deid.pipeline import Deidentifier, DeidResult, TreeResult, deidentify_tree
from client.deid.report import build_report, write_report
from client.deid.text import detect_text
from common.chainlog import ChainLog
from common.errors import DeidError

__all__ = [
    "DeidResult",
    "Deidentifier",
    "MalformedInput",
    "Pseudonymizer",
    "TreeResult",
    "deidentify_tree",
    "detect_text",
    "load_secret",
    "run_deid",
    "write_private_log",
]


def write_private_log(path: Path, tree: TreeResult, **fields) -> None:
    """Append the run's input->output links to a site-private, hash-chained log."""
    ChainLog(Path(path)).append("deid-run", links=tree.private_links, **fields)


def run_deid(
    input_dir: Path,
    output_dir: Path,
    secret_file: Path,
    private_log: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """De-identify a PACS export folder into output_dir; returns the (PHI-free) report."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DeidError(f"{input_dir}: input folder not found")
    if output_dir.resolve() == input_dir.resolve():
        raise DeidError(f"{output_dir}: output folder must differ from the input folder")
    if private_log is not None and output_dir.resolve() in Path(private_log).resolve().parents:
        raise DeidError(
            f"{private_log}: the private log must not be inside the output folder "
            "(everything there may leave the site)"
        )
    secret = load_secret(secret_file)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tree = deidentify_tree(input_dir, output_dir, secret, progress=progress)
    report = build_report(tree.outputs, tree.quarantined, time.perf_counter() - start)
    write_report(output_dir, report)
    if private_log is not None:
        write_private_log(private_log, tree, output_dir=str(output_dir.resolve()))
    return report
