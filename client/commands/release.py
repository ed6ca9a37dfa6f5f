"""`busgen-site release`: generate, audit and sign a synthetic release bundle."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import config_options, echo_json


@click.command("release")
@click.option(
    "--workdir",
    "workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The site's work directory.",
)
@click.option(
    "--n",
    "n",
    type=int,
    default=None,
    help="Candidate images to generate (default: release.n_images).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Bundle directory to write (must not exist, except the site's release/ slot).",
)
@click.option(
    "--base",
    "base",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The global base model directory.",
)
@click.option(
    "--adapter",
    "adapter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The adapter (.safetensors) to release from; default: the "
    "newest file in the site's adapters/.",
)
@click.option(
    "--box-prior",
    "box_prior",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A DP box prior (JSON); default: the one stored in the base model.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@config_options
def release(
    workdir: Path,
    n: int | None,
    out: Path,
    base: Path,
    adapter: Path | None,
    box_prior: Path | None,
    seed: int,
    as_json: bool,
    config_path: str,
    overrides: tuple[str, ...],
) -> None:
    """Generate N images, audit them (memorization, membership inference, PHI, DP statement)
    and measure their quality, drop flagged images and write a signed bundle to OUT."""
    import torch
    from rich.progress import Progress

    from client.release import make_release
    from client.workdir import SiteDir
    from common.config import load_config
    from common.errors import DataError

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = load_config(config_path, overrides)
    site = SiteDir(workdir)
    if adapter is None:
        found = sorted(site.adapters.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise DataError(f"{site.adapters}: no adapter found; pass --adapter FILE")
        adapter = found[-1]
    n = n or cfg.release.n_images
    with Progress(disable=as_json) as bar:
        task = bar.add_task("generating", total=n)
        summary = make_release(
            site,
            cfg,
            base,
            adapter,
            n,
            out,
            seed=seed,
            box_prior_path=box_prior,
            progress=lambda done: bar.update(task, completed=done),
        )
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"released {summary['n_released']} of {summary['n_generated']} images "
            f"({summary['n_removed_memorization']} possible copies, "
            f"{summary['n_removed_phi']} with text removed) to {summary['bundle']}"
        )
        click.echo(f"site-private review: {summary['private_review']}")


commands = [release]
