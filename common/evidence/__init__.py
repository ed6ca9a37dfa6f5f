"""Evidence: train-on-synthetic vs train-on-real, scaling, cross-device and privacy-utility.

`run_evidence` is the one entry point (used by `busgen-server evaluate`, the demo and the
benchmark): it runs the protocol and writes `results.json`, PNG plots and `report.html` into
`out_dir`. The directory is assembled next to its destination and renamed into place at the
end, so an interrupted run never leaves a report that looks complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.config import Config
from common.evidence.protocol import run_evidence_protocol
from common.evidence.report import render_html, write_plots
from common.files import staged_directory


def run_evidence(
    out_dir: Path,
    real_train_stores: list[Path],
    test_stores: list[Path],
    synthetic_sets: dict[str, tuple[Path | list[Path], float | None]],
    cfg: Config,
    seeds: list[int] | None = None,
    full_grid: bool | None = None,
    show_progress: bool = True,
    note: str = "",
) -> dict:
    """Run the evidence protocol and write its report; returns the results dict.

    `synthetic_sets` maps a label to (folder or release bundle, or a list of them pooled, e.g.
    every site's release; epsilon); epsilon None or
    `math.inf` means a release made without DP. The release at `cfg.dp.target_epsilon` (else
    the first) is the headline one. `seeds` default to `cfg.seed + k` for k < `evidence.seeds`.
    `note` is printed at the top of the report (e.g. what the synthetic sets really are).
    """
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.evidence.threads)
    try:
        with staged_directory(Path(out_dir)) as work:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                disable=not show_progress,
            ) as progress:
                results = run_evidence_protocol(
                    real_train_stores,
                    test_stores,
                    synthetic_sets,
                    cfg,
                    seeds=seeds,
                    full_grid=full_grid,
                    progress=progress,
                )
            results["note"] = note
            plots = write_plots(results, work)
            results["plots"] = {name: p.name for name, p in plots.items()}
            (work / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
            (work / "report.html").write_text(render_html(results, plots), encoding="utf-8")
    finally:
        torch.set_num_threads(threads)
    return results


__all__ = ["run_evidence", "run_evidence_protocol"]
