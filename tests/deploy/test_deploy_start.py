"""The deployment's own commands, run as processes: the exact `busgen-server init-ca` / `start` /
`register-site` commands of the Compose file and the `busgen-site join` / `doctor` commands of
the systemd units (paths moved into a temp dir, a free port), then a site joins over TLS with
node authentication and its doctor passes."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server import superlink as sl
from tests.deploy.deploy_files import compose_command, map_paths, unit_exec

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def tool(args: list[str]) -> list[str]:
    return [str(BIN / args[0]), *args[1:]]


def run(args, **kw):
    res = subprocess.run(tool(args), capture_output=True, text=True, timeout=120, **kw)
    assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"
    return res.stdout


def with_port(args: list[str], port: int) -> list[str]:
    args = list(args)
    args[args.index("--port") + 1] = str(port)
    return args


def test_compose_and_unit_commands_bring_up_a_working_site(tmp_path):
    root = tmp_path / "fs"  # stands in for the containers' and the host's file systems
    state = root / "state"
    port = sl.free_port()
    procs: list[subprocess.Popen] = []
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(var, None)
    try:
        # coordinator: the compose `init` and `superlink` services' commands
        run(map_paths(compose_command("init", {"BUSGEN_PUBLIC_HOST": "localhost"}), root), env=env)
        start = map_paths(with_port(compose_command("superlink"), port), root)
        assert start[start.index("--host") + 1] == "127.0.0.1"
        procs.append(
            subprocess.Popen(
                tool(start), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        ca = state / "pki" / "ca.pem"
        tls = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + 60
        while True:
            assert procs[0].poll() is None, "busgen-server start exited"
            try:
                if (
                    httpx.get(f"https://127.0.0.1:{port}/health", verify=tls, timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "SuperLink not healthy"
            time.sleep(0.5)

        # site: init, trust the CA, approve the installed app (default deny)
        site_env = {
            "BUSGEN_SUPERLINK": f"localhost:{port}",
            "BUSGEN_WORKDIR": "/var/lib/busgen/site",
        }
        join = map_paths(unit_exec("busgen-site.service", site_env), root, create=False)
        workdir = Path(join[join.index("--workdir") + 1])
        run(["busgen-site", "init", "--site-id", "hospital-a", "--workdir", str(workdir)], env=env)
        shutil.copyfile(ca, workdir / "keys" / "ca.pem")
        app_hash = run(
            ["busgen-site", "approve", "--workdir", str(workdir), "--show-installed"], env=env
        ).strip()
        run(["busgen-site", "approve", "--workdir", str(workdir), app_hash], env=env)

        # coordinator registers the site's public key (compose `admin` service, README command)
        inbox = state / "inbox"
        inbox.mkdir()
        shutil.copyfile(workdir / "keys" / "node_key.pub", inbox / "hospital-a.pub")
        run(
            [
                "busgen-server",
                "register-site",
                str(inbox / "hospital-a.pub"),
                "--name",
                "hospital-a",
                "--state",
                str(state),
            ],
            env=env,
        )

        # site: the systemd unit's ExecStart
        procs.append(
            subprocess.Popen(
                tool(join), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        deadline = time.monotonic() + 90
        while not [
            n for n in sl.list_nodes(state / "flwr") if str(n.get("status", "")).lower() == "online"
        ]:
            assert procs[1].poll() is None, "busgen-site join exited"
            assert time.monotonic() < deadline, "site node not online"
            time.sleep(1)

        # the doctor unit passes against the live SuperLink (a GPU is only a warning)
        doctor = map_paths(unit_exec("busgen-doctor.service", site_env), root, create=False)
        res = subprocess.run(
            tool(doctor) + ["--json"], capture_output=True, text=True, timeout=120, env=env
        )
        checks = {c["name"]: c["status"] for c in json.loads(res.stdout)}
        assert res.returncode == 0, res.stdout
        for name in (
            "ca",
            "tcp",
            "tls",
            "http",
            "clock",
            "node-key",
            "node-registered",
            "approval",
        ):
            assert checks[name] == "ok", (name, res.stdout)
    finally:
        for p in reversed(procs):  # as systemd / compose stop them: SIGTERM, then wait
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=45)
            except subprocess.TimeoutExpired:
                p.kill()
    assert all(p.returncode in (0, -signal.SIGTERM) for p in procs), [p.returncode for p in procs]
