"""Start and talk to a Flower SuperLink (the coordinator's end of the Deployment Engine).

The SuperLink always runs with TLS, SuperNode authentication and a persistent database, and it
binds to loopback: in Flower 1.42 (open source) the Control API (`flwr run`, `flwr supernode
register`) shares the port with the Fleet API and has no authentication, so anybody who can
reach the port could submit code that runs on every hospital's node. Sites reach the fleet API
only through a reverse proxy that forwards `/v1/fleet/*` and nothing else (see
`deploy/superlink-proxy.md`).

The `flwr` CLI is driven as a subprocess with its own FLWR_HOME, whose `config.toml` names the
one connection this coordinator uses.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from common.errors import FederationError
from common.files import atomic_write_bytes
from common.flower_env import flower_env
from common.processes import ManagedProcess, flwr_bin, spawn, with_venv_path
from server.provision import CaDir

CONNECTION = "busgen"


def write_cli_config(flwr_home: Path, address: str, ca_cert: Path) -> None:
    """The `flwr` CLI's config.toml: one TLS connection to our SuperLink, set as default."""
    text = (
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "{address}"\nroot-certificates = "{Path(ca_cert).resolve()}"\n'
    )
    Path(flwr_home).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(flwr_home) / "config.toml", text.encode())


def start_superlink(
    state_dir: Path, ca: CaDir, port: int, host: str = "127.0.0.1"
) -> ManagedProcess:
    """Start `flower-superlink` with TLS, node auth and its database in `state_dir`."""
    state_dir = Path(state_dir).resolve()
    flwr_home = state_dir / "flwr"
    env = flower_env(flwr_home)
    args = [
        flwr_bin("flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--ssl-ca-certfile",
        str(ca.ca_cert),
        "--ssl-certfile",
        str(ca.server_cert),
        "--ssl-keyfile",
        str(ca.server_key),
        "--enable-supernode-auth",
        "--database",
        str(state_dir / "superlink.db"),
        "--disable-runtime-dependency-installation",
    ]
    write_cli_config(flwr_home, f"{host}:{port}", ca.ca_cert)
    link = spawn("superlink", args, env, state_dir / "logs" / "superlink.log", cwd=state_dir)
    wait_healthy(link, f"{host}:{port}", ca.ca_cert)
    return link


def wait_healthy(
    link: ManagedProcess, address: str, ca_cert: Path, timeout_s: float = 60.0
) -> None:
    """Poll `GET /health` over TLS until the SuperLink answers 200."""
    import ssl

    import httpx

    tls = ssl.create_default_context(cafile=str(ca_cert))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not link.alive():
            raise FederationError(
                f"SuperLink exited with code {link.proc.returncode}; "
                f"log {link.log_path}:\n{link.log_tail()}"
            )
        try:
            if httpx.get(f"https://{address}/health", verify=tls, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise FederationError(
        f"SuperLink at {address} not healthy after {timeout_s:.0f}s; log {link.log_path}"
    )


def flwr_cli(flwr_home: Path, args: list[str], timeout_s: float = 120.0) -> dict | list:
    """Run `flwr ARGS --format json` against our connection; return its parsed JSON."""
    cmd = [flwr_bin("flwr"), *args, CONNECTION, "--format", "json"]
    res = subprocess.run(
        cmd,
        env=with_venv_path(flower_env(flwr_home)),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )
    try:
        out = json.loads(res.stdout)
    except json.JSONDecodeError:
        out = None
    if (
        res.returncode != 0
        or out is None
        or (isinstance(out, dict) and not out.get("success", True))
    ):
        detail = (out or {}).get("error-message") if isinstance(out, dict) else None
        raise FederationError(
            f"`flwr {' '.join(args[:2])}` failed (exit {res.returncode}): "
            f"{detail or (res.stdout + res.stderr).strip()[-800:]}"
        )
    return out


def register_node(flwr_home: Path, public_key: Path, name: str) -> int:
    """Register a site's node key with the SuperLink; return its node id."""
    out = flwr_cli(
        flwr_home, ["supernode", "register", str(Path(public_key).resolve()), "--name", name]
    )
    return int(out["node-id"])


def list_nodes(flwr_home: Path) -> list[dict]:
    out = flwr_cli(flwr_home, ["supernode", "list"])
    return out.get("nodes", []) if isinstance(out, dict) else out


def submit_run(flwr_home: Path, app_dir: Path, run_config: dict[str, object]) -> int:
    """`flwr run APP_DIR` with run-config overrides; return the run id."""
    pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
    out = flwr_cli(
        flwr_home,
        ["run", str(Path(app_dir).resolve())] + (["--run-config", pairs] if pairs else []),
    )
    return int(out["run-id"])


def run_status(flwr_home: Path, run_id: int) -> str:
    """Status of one run, e.g. `running` or `finished:completed`."""
    out = flwr_cli(flwr_home, ["ls", "--run-id", str(run_id)])
    runs = out.get("runs", [])
    if not runs:
        raise FederationError(f"run {run_id}: not known to the SuperLink")
    return str(runs[0].get("status"))


def wait_run(
    flwr_home: Path, run_id: int, timeout_s: float, poll_s: float = 3.0, on_poll=None
) -> str:
    """Poll until the run has finished; return its final status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run_status(flwr_home, run_id)
        if status.startswith("finished"):
            return status
        if on_poll:
            on_poll(status)
        time.sleep(poll_s)
    raise FederationError(f"run {run_id}: not finished after {timeout_s:.0f}s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
