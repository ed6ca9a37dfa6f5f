"""`busgen-server evidence`: what a synthetic release is worth to a diagnostic classifier."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import config_options, echo_json


def parse_synthetic(specs: tuple[str, ...]) -> dict[str, tuple[Path, float | None]]:
    """`PATH` (a release bundle: epsilon from its manifest) or `PATH@EPSILON` (`@inf` = no DP)."""
    from common.errors import ConfigError
    from common.evidence.data import release_epsilon

    sets: dict[str, tuple[Path, float | None]] = {}
    for spec in specs:
        path_text, _, eps_text = spec.rpartition("@") if "@" in spec else (spec, "", "")
        path = Path(path_text)
        if eps_text:
            try:
                eps = float(eps_text)
            except ValueError as exc:
                raise ConfigError(
                    f"--synthetic {spec}: epsilon {eps_text!r} is not a number"
                ) from exc
            eps = None if eps == float("inf") else eps
        else:
            eps = release_epsilon(path)
        label = path.name or str(path)
        while label in sets:
            label += "'"
        sets[label] = (path, eps)
    return sets


@click.command("evidence")
@config_options
@click.option(
    "--real",
    "real",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Real training store (repeatable); its training-side patients are used.",
)
@click.option(
    "--synthetic",
    "synthetic",
    multiple=True,
    required=True,
    metavar="PATH[@EPS]",
    help="Release bundle or synthetic folder (repeatable). The epsilon comes from the "
    "bundle's manifest, or from an @EPS suffix (@inf: no DP).",
)
@click.option(
    "--test-store",
    "test",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Store whose held-out patients form the test set (repeatable).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Report directory (results.json, plots, report.html).",
)
@click.option("--seeds", type=int, default=None, help="Number of seeds (default: evidence.seeds).")
@click.option("--full-grid", is_flag=True, help="All seeds for scaling and cross-device too.")
@click.option("--json", "as_json", is_flag=True, help="Print the headline results as JSON.")
def evidence(
    config_path: str,
    overrides: tuple[str, ...],
    real: tuple[Path, ...],
    synthetic: tuple[str, ...],
    test: tuple[Path, ...],
    out: Path,
    seeds: int | None,
    full_grid: bool,
    as_json: bool,
) -> None:
    """Train one classifier recipe on real, synthetic and real+synthetic images; test on held-out
    real patients; write the evidence report."""
    from common.config import load_config
    from common.evidence import run_evidence

    cfg = load_config(config_path, overrides)
    seed_list = None if seeds is None else [cfg.seed + k for k in range(seeds)]
    results = run_evidence(
        out,
        list(real),
        list(test),
        parse_synthetic(synthetic),
        cfg,
        seeds=seed_list,
        full_grid=full_grid or None,
    )
    head = {
        k: {
            "auc": results[k]["auc"],
            "auc_ci": results[k]["auc_ci"],
            "n_images": results[k]["n_images"],
            "epsilon": results[k]["epsilon"],
        }
        for k in ("auc_trtr", "auc_tstr", "auc_real_plus_synth")
    }
    if as_json:
        echo_json({"out": str(out), **head, "targets": results["targets"]})
    else:
        for k, v in head.items():
            click.echo(
                f"{k}: {v['auc']:.3f} ({v['auc_ci'][0]:.3f}-{v['auc_ci'][1]:.3f}), "
                f"{v['n_images']} images"
            )
        click.echo(f"report: {out / 'report.html'}")


commands = [evidence]
