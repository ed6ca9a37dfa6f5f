"""A whole consortium on one machine: a real SuperLink and one real SuperNode per site.

`run_local_consortium` is what the demo and the federation benchmark use: a SuperLink (TLS,
SuperNode authentication, persistent database) on 127.0.0.1, one SuperNode per simulated site,
the coordinator's ServerApp for `cfg.federation.rounds` rounds, then teardown by PID. It is the
Ray-free path: Flower's Simulation Engine needs Ray, the Deployment Engine on localhost does not.
It drives both sides through their public entry points, which is why it lives here and not in
`server/` or `client/`.
"""

from __future__ import annotations

from pathlib import Path

from client.supernode import start_supernode
from client.workdir import SiteDir
from common.config import Config
from common.processes import stop
from server import superlink as sl
from server.federation import (
    Progress,
    follow_job,
    job_timeout,
    register_site,
    submit_job,
    write_run_spec,
)
from server.provision import init_ca
from server.run_state import STATE_FILE


def run_local_consortium(
    run_dir: Path,
    cfg: Config,
    site_dirs: list[Path],
    base_dir: Path,
    progress: Progress | None = None,
) -> dict:
    """One-machine consortium on the Deployment Engine; writes RUN_DIR/server/ state.

    Every site directory must have been initialised (`client.site_init.init_site`), hold a
    store and have approved the installed app (`client.approval.approve`): sites run no
    unapproved code, and approving is the site operator's act, not the coordinator's.
    Returns the run state summary; raises FederationError when the job fails.
    """
    state_dir = (Path(run_dir) / "server").resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = init_ca(state_dir / "pki")
    port = sl.free_port()
    procs: list[sl.ManagedProcess] = []
    try:
        procs.append(sl.start_superlink(state_dir, ca, port))
        for d in site_dirs:
            site = SiteDir(d)
            register_site(state_dir, site.node_public_key, site.site_id())
            procs.append(
                start_supernode(
                    site.root, f"localhost:{port}", ca.ca_cert, sl.free_port(), base_dir
                )
            )
        write_run_spec(state_dir, cfg, base_dir, resume=(state_dir / STATE_FILE).exists())
        run_id = submit_job(state_dir)
        return follow_job(state_dir, run_id, job_timeout(cfg), progress)
    finally:
        stop(list(reversed(procs)))
