"""`busgen-site train`: standalone local DP training of LoRA adapters on this site's store."""

from __future__ import annotations

import time
from pathlib import Path

import click

from common.cli import config_options, echo_json


@click.command("train")
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Site work directory (from `busgen-site init`).",
)
@config_options
@click.option(
    "--base",
    "base_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Base model directory (verified by its content hash before use).",
)
@click.option(
    "--epsilon",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Target epsilon for this job (default: dp.target_epsilon of the config).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="DP-SGD steps (default: dp.local_steps of the config).",
)
@click.option("--job-id", default=None, help="Job id in the ledger (default: local-<time>).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(
    workdir: Path,
    config_path: str,
    overrides: tuple[str, ...],
    base_dir: Path,
    epsilon: float | None,
    steps: int | None,
    job_id: str | None,
    as_json: bool,
) -> None:
    """Train this site's adapters with patient-level DP-SGD, as one local job.

    The site policy and the ledger are checked before training; a job over budget is refused
    and nothing is recorded. The adapter is written to the site's adapters/ directory.
    """
    import torch

    from client.train import train_adapters
    from client.train.job import standalone_config
    from client.workdir import SiteDir
    from common.config import load_config

    torch.set_num_threads(min(torch.get_num_threads(), 4))
    cfg = standalone_config(load_config(config_path, overrides), epsilon, steps)
    job = job_id or time.strftime("local-%Y%m%dT%H%M%S", time.gmtime())
    result = train_adapters(SiteDir(workdir), cfg, base_dir, None, round=1, job_id=job)
    out = {
        "job_id": job,
        "adapter": str(result.adapter_path),
        "statement": result.statement.to_dict(),
        "num_examples_coarse": result.num_examples,
        "metrics": result.metrics,
        "local_metrics": result.local_metrics,
    }
    if as_json:
        echo_json(out)
        return
    click.echo(f"adapter: {result.adapter_path}")
    click.echo(f"privacy: {result.statement.summary()}")
    click.echo(
        f"site total epsilon now {result.metrics['site_epsilon']:.3f} "
        f"(see `busgen-site budget --workdir {workdir}`)"
    )


commands = [train]
