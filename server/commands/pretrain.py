"""`busgen-server pretrain`: train the base generator on a training store."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import config_options, echo_json


@click.command("pretrain")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Training store (simulated or imported), see common.store.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Base model directory; an interrupted run in it is resumed.",
)
@click.option(
    "--time-budget",
    "time_budget_s",
    type=float,
    default=None,
    help="Stop (with a checkpoint) after this many seconds; run again to resume.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_options
def pretrain_cmd(
    data_dir: Path,
    out_dir: Path,
    time_budget_s: float | None,
    as_json: bool,
    config_path: str,
    overrides: tuple[str, ...],
) -> None:
    """Pretrain (or resume pretraining) the conditional diffusion base model."""
    import torch

    from common.config import load_config
    from common.model import pretrain
    from common.store import Store

    cfg = load_config(config_path, overrides)
    if not torch.cuda.is_available():
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    result = pretrain(
        Store(data_dir), cfg, out_dir, progress=not as_json, time_budget_s=time_budget_s
    )
    summary = {
        "out": str(result.out_dir),
        "step": result.step,
        "steps": cfg.pretrain.steps,
        "finished": result.finished,
        "content_hash": result.content_hash,
        "images_per_s": round(result.images_per_s, 2),
        "n_images": result.n_images,
        "final_loss": result.losses[-1] if result.losses else None,
    }
    if as_json:
        echo_json(summary)
    elif result.finished:
        click.echo(f"base model: {out_dir} (content hash {result.content_hash})")
    else:
        click.echo(f"stopped at step {result.step}/{cfg.pretrain.steps}; run again to resume")


commands = [pretrain_cmd]
