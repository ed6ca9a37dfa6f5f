"""Read the commands the deploy files run, so tests can run exactly those commands.

The Compose file, the systemd units and the Dockerfiles name `busgen-server` / `busgen-site`
commands with container or host paths and ${VARIABLES}. These helpers return them as argument
lists, with variables filled from the example env files (or given values), and can map the
absolute paths they contain into a test directory.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "coordinator" / "compose.yaml"
NGINX = DEPLOY / "coordinator" / "nginx" / "fleet-proxy.conf"
SYSTEMD = DEPLOY / "site" / "systemd"
DOCKERFILES = {
    name: DEPLOY / "docker" / f"{name}.Dockerfile"
    for name in ("site-cpu", "site-cuda", "coordinator")
}

_VAR = re.compile(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}")


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """${VAR}, ${VAR:-default} and ${VAR:?error} as Compose and systemd expand them."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name} is not set ({arg or 'no default'})")

    return _VAR.sub(sub, text)


def dockerfile_commands(path: Path) -> list:
    return list(dockerfile.parse_file(str(path)))


def entrypoint(path: Path) -> list[str]:
    return [list(c.value) for c in dockerfile_commands(path) if c.cmd == "ENTRYPOINT"][-1]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_command(service: str, env: dict[str, str] | None = None) -> list[str]:
    """ENTRYPOINT of the service's image (from its Dockerfile) + the service's command."""
    spec = compose()["services"][service]
    env = env if env is not None else read_env(COMPOSE.parent / "env.example")
    image_entry = entrypoint(ROOT / spec["build"]["dockerfile"])
    return image_entry + [interpolate(str(a), env) for a in spec["command"]]


def unit_exec(unit: str, env: dict[str, str] | None = None) -> list[str]:
    """ExecStart of a systemd unit, with ${VARS} from site.env.example (or `env`)."""
    env = env if env is not None else read_env(DEPLOY / "site" / "site.env.example")
    line = next(
        row for row in (SYSTEMD / unit).read_text().splitlines() if row.startswith("ExecStart=")
    )
    args = shlex.split(interpolate(line.split("=", 1)[1], env))
    args[0] = Path(args[0]).name  # /opt/busgen/venv/bin/busgen-site -> busgen-site
    return args


def map_paths(args: list[str], root: Path, create: bool = True) -> list[str]:
    """Move absolute paths under `root`; create them (files for key/cert names) if asked."""
    out = []
    for a in args:
        if a.startswith("/"):
            p = root / a.lstrip("/")
            if create and not p.exists():
                if p.suffix in (".pem", ".key", ".pub", ".json", ".yaml"):
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text("")
                else:
                    p.mkdir(parents=True, exist_ok=True)
            a = str(p)
        out.append(a)
    return out


def parse_with_cli(args: list[str]):
    """Parse `args` with the real click command (as the tool would); returns its params."""
    from client.cli import main as site_cli
    from server.cli import main as server_cli

    tools = {"busgen-site": site_cli, "busgen-server": server_cli}
    group = tools[args[0]]
    if args[1:] in (["--help"], ["-h"]):
        return {}
    command = group.commands[args[1]]
    ctx = command.make_context(f"{args[0]} {args[1]}", list(args[2:]))
    return ctx.params
