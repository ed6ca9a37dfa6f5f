"""`busgen-site generate`: sample synthetic images at a site (base model + the site's adapter)."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import config_options, echo_json

PATHOLOGY_CHOICES = ("mix", "normal", "benign", "malignant")


@click.command("generate")
@click.option(
    "--workdir",
    "workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The site's work directory (its newest adapter is used).",
)
@click.option("--n", "n", type=int, required=True, help="Number of images.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory (must not exist): images/*.png and metadata.jsonl.",
)
@click.option(
    "--base",
    "base",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The global base model directory (its content hash is verified).",
)
@click.option(
    "--expected-hash", default=None, help="Refuse the base unless its content hash is this."
)
@click.option(
    "--adapter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="LoRA adapter (.safetensors); default: the newest in the site's adapters/.",
)
@click.option(
    "--base-only", is_flag=True, help="Ignore the site's adapters; sample the base model."
)
@click.option(
    "--pathology",
    type=click.Choice(PATHOLOGY_CHOICES),
    default="mix",
    show_default=True,
    help="One class, or an equal mix of the three.",
)
@click.option(
    "--device",
    "device",
    default=None,
    help="Device condition (default: cycle through the model's devices).",
)
@click.option(
    "--box-prior",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A DP box prior (JSON); default: the one stored in the base model.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@config_options
def generate_cmd(
    workdir: Path,
    n: int,
    out: Path,
    base: Path,
    expected_hash: str | None,
    adapter: Path | None,
    base_only: bool,
    pathology: str,
    device: str | None,
    box_prior: Path | None,
    seed: int,
    as_json: bool,
    config_path: str,
    overrides: tuple[str, ...],
) -> None:
    """Generate N synthetic images with lesion boxes drawn from a DP box prior.

    The images stay in the site's hands: to share them, use `busgen-site release`, which audits
    and signs them.
    """
    import torch
    from rich.progress import Progress

    from client.release import load_model
    from client.workdir import SiteDir
    from common.config import load_config
    from common.model.export import generate_to_dir

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = load_config(config_path, overrides)
    site = SiteDir(workdir)
    if base_only:
        adapter = None
    elif adapter is None:
        found = (
            sorted(site.adapters.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
            if site.adapters.exists()
            else []
        )
        adapter = found[-1] if found else None
        if adapter is None and not as_json:
            click.echo(f"no adapter in {site.adapters}; sampling the base model only")
    model = load_model(base, adapter, cfg, expected_hash=expected_hash, box_prior_path=box_prior)
    provenance = {
        "base_hash": model.base_hash,
        "adapter": str(adapter) if adapter else None,
        "adapter_sha256": model.adapter_hash,
    }
    with Progress(disable=as_json) as bar:
        task = bar.add_task("generating", total=n)
        summary = generate_to_dir(
            out,
            cfg,
            model.unet,
            model.model_cfg,
            n,
            pathology=pathology,
            device=device,
            seed=seed,
            box_prior=model.box_prior,
            provenance=provenance,
            progress=lambda done: bar.update(task, completed=done),
        )
    if as_json:
        echo_json(summary)
    else:
        source = f"adapter {summary['adapter']}" if summary["adapter"] else "base model only"
        click.echo(f"wrote {n} images to {out} ({source}; base {summary['base_hash'][:16]}...)")


commands = [generate_cmd]
