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
7. report     RUN_DIR/report.html and RUN_DIR/summary.json

A stage that finished leaves a marker in RUN_DIR/.stages/, so re-running the command resumes
after the last finished stage instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

from common.config import Config
from common.store import atomic_write_json

log = logging.getLogger(__name__)
console = Console(stderr=True)

STAGES = ("sites", "base", "federate", "release", "publish", "evidence", "report")


def cache_root() -> Path:
    """Where the pretrained base is cached between runs (BUSGEN_CACHE overrides)."""
    default = Path(__file__).resolve().parent.parent / ".cache" / "busgen"
    return Path(os.environ.get("BUSGEN_CACHE", default))


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
