"""The whole consortium on one machine: the project's main job (`busgen-server demo`).

Stages, each a call into library code that the real deployment uses too:

1. sites      every simulated hospital: `init` (keys, secret, policy), a simulated PACS export
              with PHI (DICOM), then `ingest` (de-identification into the training store)
2. base       pretrain the base generator on public-like simulated data (cached across runs)
3. federate   Flower Deployment Engine on 127.0.0.1 with TLS and node authentication:
              DP adapter rounds at every site, FedAvg of adapters at the coordinator
4. release    every site generates, audits and signs a synthetic release
5. publish    the coordinator verifies each bundle and adds it to the release catalog
6. evidence   train-on-synthetic vs train-on-real on held-out real patients
Then RUN_DIR/summary.json and RUN_DIR/report.html are written from the stage results.

A stage that finished leaves a marker in RUN_DIR/.stages/, so re-running the command resumes
after the last finished stage instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.config import Config, SimulatedSite
from common.errors import FederationError
from common.files import atomic_write_json
from simulation.report import render_report

log = logging.getLogger(__name__)
console = Console(stderr=True)

STAGES = ("sites", "base", "federate", "release", "publish", "evidence")


def cache_root() -> Path:
    """Where the pretrained base is cached between runs: `BUSGEN_CACHE` if set, else the
    user's cache directory (`$XDG_CACHE_HOME/busgen`, by default `~/.cache/busgen`), never the
    source tree."""
    if os.environ.get("BUSGEN_CACHE"):
        return Path(os.environ["BUSGEN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "busgen"


class DemoRun:
    """Paths and stage bookkeeping of one demo run directory."""

    def __init__(self, run_dir: Path, cfg: Config) -> None:
        self.root = Path(run_dir).resolve()
        self.cfg = cfg
        self.timings: dict[str, float] = {}
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def server(self) -> Path:
        return self.root / "server"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def catalog(self) -> Path:
        return self.server / "catalog"

    def site_dir(self, site_id: str) -> Path:
        return self.root / "sites" / site_id

    def pacs_dir(self, site_id: str) -> Path:
        return self.root / "pacs" / site_id

    def _marker(self, stage: str) -> Path:
        return self.root / ".stages" / f"{stage}.json"

    def done(self, stage: str) -> dict | None:
        marker = self._marker(stage)
        return json.loads(marker.read_text()) if marker.exists() else None

    @contextmanager
    def stage(self, name: str, result: dict) -> Iterator[None]:
        """Run a stage body and mark it finished with its result (only if it succeeds)."""
        start = time.perf_counter()
        console.rule(f"[bold]stage {STAGES.index(name) + 1}/{len(STAGES)}: {name}")
        yield
        self.timings[name] = round(time.perf_counter() - start, 1)
        atomic_write_json(self._marker(name), {**result, "seconds": self.timings[name]})


def run_stage(run: DemoRun, name: str, body: Callable[[], dict]) -> dict:
    """Skip a finished stage (resume), else run `body` and record its result."""
    previous = run.done(name)
    if previous is not None:
        console.print(f"[dim]stage {name}: already done, skipping (resume)[/dim]")
        run.timings[name] = previous.get("seconds", 0.0)
        return previous
    result: dict = {}
    with run.stage(name, result):
        result.update(body())
    return result


# --- stage bodies ----------------------------------------------------------------------------


def stage_sites(run: DemoRun) -> dict:
    """Each hospital: init, a simulated PACS export (with PHI), de-identifying ingest."""
    from client.ingest import ingest
    from client.site_init import init_site
    from client.workdir import SiteDir

    sites = {}
    for spec in run.cfg.simulation.sites:
        site = SiteDir(run.site_dir(spec.site_id))
        init_site(spec.site_id, site.root)
        pacs = pacs_export(run, spec)
        console.print(f"{spec.site_id}: de-identifying and ingesting")
        report = ingest(pacs / "DICOM", pacs / "labels.csv", site)
        sites[spec.site_id] = {"device": spec.device, "ingest": _brief(report)}
    return {"sites": sites}


def pacs_export(run: DemoRun, spec: SimulatedSite) -> Path:
    """The hospital's simulated PACS export (DICOM with PHI + labels.csv), made once per run."""
    from simulation.phantom import write_pacs_export

    pacs = run.pacs_dir(spec.site_id)
    if not (pacs / "labels.csv").exists():
        console.print(
            f"{spec.site_id}: simulating a PACS export of {spec.patients} patients ({spec.device})"
        )
        write_pacs_export(
            pacs,
            site=spec.site_id,
            patients=spec.patients,
            device=spec.device,
            malignant_rate=spec.malignant_rate,
            normal_rate=spec.normal_rate,
            seed=spec.seed,
        )
    return pacs


def _brief(report: dict) -> dict:
    """The counts of an ingest report: what the summary shows (no per-file detail)."""
    return {
        **report["counts"],
        "store_added": report["store"]["added"],
        "store_total": report["store"]["total"],
    }


def base_fingerprint(cfg: Config) -> str:
    """Cache key of the pretrained base: everything that shapes it, nothing that doesn't."""
    import hashlib

    from common.chainlog import canonical_json

    parts = {
        "model": cfg.to_dict()["model"],
        "pretrain": cfg.to_dict()["pretrain"],
        "patients": cfg.simulation.pretrain_patients,
        "devices": list(cfg.simulation.pretrain_devices),
        "seed": cfg.seed,
    }
    return hashlib.sha256(canonical_json(parts)).hexdigest()[:16]


def stage_base(run: DemoRun) -> dict:
    """Pretrain the base on simulated public-like data, or reuse the cached one."""
    from common.model import load_base
    from common.model.checkpoint import HASH_FILE
    from common.model.pretrain import pretrain
    from simulation.phantom import simulate_multi_device_store

    cache = cache_root() / f"base-{base_fingerprint(run.cfg)}"
    base_dir = cache / "base"
    if not (base_dir / HASH_FILE).exists():  # written last: the base is complete
        store = simulate_multi_device_store(
            cache / "pretrain-store",
            run.cfg.simulation.pretrain_devices,
            run.cfg.simulation.pretrain_patients,
            seed=run.cfg.seed,
            progress=True,
        )
        console.print(
            f"pretraining the base on {len(store)} simulated images "
            f"({run.cfg.pretrain.steps} steps; cached in {cache})"
        )
        pretrain(store, run.cfg, base_dir)
    else:
        console.print(f"reusing the cached base in {base_dir}")
    _, meta = load_base(base_dir)
    return {"base_dir": str(base_dir), "base_hash": meta["content_hash"]}


def stage_federate(run: DemoRun, base_dir: Path) -> dict:
    """Federated DP adapter rounds on Flower's Deployment Engine (TLS, node auth)."""
    from client.approval import approve, installed_app_hash, is_approved
    from client.workdir import SiteDir
    from simulation.consortium import run_local_consortium

    site_dirs = [run.site_dir(s.site_id) for s in run.cfg.simulation.sites]
    # Default deny: each simulated operator approves the app version it is about to run, as a
    # hospital's IT would with `busgen-site approve` after reviewing a release.
    app_hash = installed_app_hash()
    for d in site_dirs:
        if not is_approved(SiteDir(d), app_hash):
            approve(SiteDir(d), app_hash, note="demo: approved by the simulated site operator")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("federated rounds (sites starting)", total=run.cfg.federation.rounds)

        def on_state(state: dict) -> None:
            sites = ", ".join(
                f"{k} eps={v['epsilon']:.2f}" if v.get("epsilon") is not None else k
                for k, v in state["sites"].items()
            )
            bar.update(
                task,
                completed=state["completed_rounds"],
                description=f"federated rounds [{sites or 'waiting for sites'}]",
            )

        summary = run_local_consortium(run.root, run.cfg, site_dirs, base_dir, progress=on_state)
    return {"federation": summary}


def stage_release(run: DemoRun, base_dir: Path, adapter: Path) -> dict:
    """Every site generates, audits and signs its release into sites/<id>/release/."""
    from client.release import make_release
    from client.workdir import SiteDir

    releases = {}
    for i, spec in enumerate(run.cfg.simulation.sites):
        site = SiteDir(run.site_dir(spec.site_id))
        console.print(f"{spec.site_id}: generating and auditing {run.cfg.release.n_images} images")
        releases[spec.site_id] = make_release(
            site,
            run.cfg,
            base_dir,
            adapter,
            run.cfg.release.n_images,
            site.release,
            seed=run.cfg.seed + i,
        )
    return {"releases": releases}


def stage_publish(run: DemoRun) -> dict:
    """The coordinator trusts each site's signing key, verifies and publishes its bundle."""
    from client.workdir import SiteDir
    from common.release.signing import add_trusted_key
    from server.catalog.catalog import Catalog

    trust = run.server / "trust.json"
    catalog = Catalog(run.catalog).ensure()
    published = {}
    for spec in run.cfg.simulation.sites:
        site = SiteDir(run.site_dir(spec.site_id))
        add_trusted_key(trust, spec.site_id, site.signing_public_key)  # idempotent per key
        published[spec.site_id] = catalog.publish(site.release, trust)
    return {"catalog": str(run.catalog), "trust": str(trust), "published": published}


def stage_evidence(run: DemoRun) -> dict:
    """TSTR vs TRTR on held-out real patients of every site."""
    from client.workdir import SiteDir
    from common.evidence import run_evidence

    stores = [SiteDir(run.site_dir(s.site_id)).store for s in run.cfg.simulation.sites]
    releases = [SiteDir(run.site_dir(s.site_id)).release for s in run.cfg.simulation.sites]
    eps = run.cfg.dp.target_epsilon if run.cfg.dp.enabled else None
    synthetic = {f"federated-eps{eps:g}" if eps else "federated-nodp": (releases, eps)}
    results = run_evidence(run.evidence, stores, stores, synthetic, run.cfg)
    keys = ("auc_trtr", "auc_tstr", "auc_real_plus_synth", "epsilon")
    return {"evidence": {k: results.get(k) for k in keys}}


def latest_global_adapter(run: DemoRun) -> Path:
    """The global adapter of the last completed round, as the coordinator checkpointed it."""
    from server.run_state import RunState

    state = RunState.load(run.server)
    if state.status != "completed" or not state.checkpoint:
        raise FederationError(
            f"{run.server}: the federated run did not complete "
            f"(status {state.status}: {state.error})"
        )
    return run.server / state.checkpoint


def build_summary(run: DemoRun, results: dict[str, dict]) -> dict:
    """Everything report.html shows, as plain data (RUN_DIR/summary.json)."""
    from server.run_state import RunState

    state = RunState.load(run.server).summary()
    releases = {}
    for site, rel in results["release"]["releases"].items():
        bundle = Path(rel["bundle"])
        releases[site] = {**rel, "audit_link": str(bundle.relative_to(run.root) / "audit.html")}
    return {
        "profile": run.cfg.profile,
        "seed": run.cfg.seed,
        "run_dir": str(run.root),
        "timings": run.timings,
        "total_seconds": sum(run.timings.values()),
        "base": results["base"],
        "sites": results["sites"]["sites"],
        "privacy": {
            "unit": "patient",
            "accountant": run.cfg.dp.accountant,
            "target_epsilon": run.cfg.dp.target_epsilon if run.cfg.dp.enabled else None,
            "max_epsilon": state["max_epsilon"],
            "sites": state["sites"],
        },
        "federation": state,
        "releases": releases,
        "catalog": {k: v for k, v in results["publish"].items() if k != "published"},
        "evidence": results["evidence"]["evidence"],
    }


def run_demo(run_dir: Path, cfg: Config) -> dict:
    """Run (or resume) every stage; returns the summary written to RUN_DIR/summary.json."""
    run = DemoRun(run_dir, cfg)
    results: dict[str, dict] = {}
    results["sites"] = run_stage(run, "sites", lambda: stage_sites(run))
    results["base"] = run_stage(run, "base", lambda: stage_base(run))
    base_dir = Path(results["base"]["base_dir"])
    results["federate"] = run_stage(run, "federate", lambda: stage_federate(run, base_dir))
    results["release"] = run_stage(
        run, "release", lambda: stage_release(run, base_dir, latest_global_adapter(run))
    )
    results["publish"] = run_stage(run, "publish", lambda: stage_publish(run))
    results["evidence"] = run_stage(run, "evidence", lambda: stage_evidence(run))
    summary = build_summary(run, results)
    atomic_write_json(run.root / "summary.json", summary)
    report = render_report(run.root, summary)
    console.print(f"[bold green]demo finished[/bold green]: {report}")
    return summary
