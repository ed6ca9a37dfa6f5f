"""Lint the deploy files (Docker cannot run here): parse each, check the rules hospital IT and
the security model rely on, and parse every command they run with the real CLI."""

import re
import shutil
import subprocess
from pathlib import Path

import crossplane
import pytest
import tomllib
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.deploy.deploy_files import (
    COMPOSE,
    DEPLOY,
    DOCKERFILES,
    NGINX,
    ROOT,
    SYSTEMD,
    compose,
    compose_command,
    dockerfile_commands,
    entrypoint,
    map_paths,
    parse_with_cli,
    read_env,
    unit_exec,
)

PINNED = re.compile(r"^[\w./-]+:\d+(\.\d+)+[\w.-]*(@sha256:[0-9a-f]{64})?$")
BUSGEN_SERVICES = ["superlink", "catalog", "run", "resume", "init", "admin"]


def stages(path):
    out = []
    for c in dockerfile_commands(path):
        if c.cmd == "FROM":
            out.append([])
        out[-1].append(c)
    return out


# --- Dockerfiles -------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_pinned_nonroot_healthcheck(name):
    path = DOCKERFILES[name]
    images = [c.value[0] for c in dockerfile_commands(path) if c.cmd == "FROM"]
    assert images, f"{path}: no FROM"
    for image in images:
        assert PINNED.match(image), f"{path}: base image {image} is not pinned to a version"
        assert ":latest" not in image
    final = stages(path)[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{path}: final stage runs as root"
    assert any(c.cmd == "HEALTHCHECK" for c in final), f"{path}: no HEALTHCHECK"
    assert not any(c.cmd == "ADD" for c in dockerfile_commands(path)), "use COPY, not ADD"
    assert not any(c.cmd == "EXPOSE" for c in final), "nothing listens for sites on its own"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_what_exists_and_context_keeps_it(name):
    path = DOCKERFILES[name]
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    for c in dockerfile_commands(path):
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for src in c.value[:-1]:
                assert (ROOT / src).exists(), f"{path}: COPY {src}: not in the repository"
                assert f"!{src}" in ignore or f"!{src}/" in ignore, (
                    f"{path}.dockerignore excludes {src}"
                )


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_torch_pin_fits_pyproject(name):
    text = DOCKERFILES[name].read_text()
    pinned = re.search(r'"torch==([\d.]+)"', text).group(1)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    spec = next(d for d in extras["ml"] if d.startswith("torch"))[len("torch") :]
    assert Version(pinned) in SpecifierSet(spec)
    cpu_index = "download.pytorch.org/whl/cpu" in text
    assert cpu_index == (name != "site-cuda"), "CPU images use the CPU index, CUDA does not"


@pytest.mark.parametrize(
    "name,tool",
    [("site-cpu", "busgen-site"), ("site-cuda", "busgen-site"), ("coordinator", "busgen-server")],
)
def test_dockerfile_entrypoint_and_healthcheck_are_real_commands(name, tool, tmp_path):
    path = DOCKERFILES[name]
    assert entrypoint(path) == [tool]
    check = [c for c in dockerfile_commands(path) if c.cmd == "HEALTHCHECK"][-1]
    args = list(check.value[1:])  # drop "CMD"
    if args[0].startswith("busgen-"):
        params = parse_with_cli(map_paths(args, tmp_path))
        assert params["workdir"] == tmp_path / "var/lib/busgen/site"
    else:  # python -c "...": must at least compile
        assert args[:2] == ["python", "-c"]
        compile(args[2], "HEALTHCHECK", "exec")


# --- Compose -------------------------------------------------------------------------------


def test_compose_services_and_volumes():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"superlink", "fleet-proxy", *BUSGEN_SERVICES}
    declared = set(spec["volumes"])
    assert declared == {"state", "base", "catalog"}
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} not declared"
            else:
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} missing"
        image = svc["image"]
        assert PINNED.match(image) and "latest" not in image, f"{name}: image {image} not pinned"


def test_compose_superlink_is_loopback_only_behind_fleet_proxy():
    services = compose()["services"]
    link = compose_command("superlink")
    assert link[:2] == ["busgen-server", "start"]
    host = link[link.index("--host") + 1]
    assert host == "127.0.0.1"
    link_port = link[link.index("--port") + 1]
    published = services["superlink"]["ports"]
    assert published == ["443:8443"] and link_port not in "".join(published)
    for name in ("fleet-proxy", "run", "resume", "admin"):
        assert services[name]["network_mode"] == "service:superlink", name
    assert "network_mode" not in services["catalog"]


def test_compose_shares_state_paths_with_the_serverapp():
    """The ServerApp (in the superlink container) reads /state and /base by the paths `run` used."""
    services = compose()["services"]
    mounts = {name: {v.split(":")[1] for v in services[name]["volumes"]} for name in services}
    for name in ("run", "resume"):
        assert {"/state", "/base"} <= mounts[name] and {"/state", "/base"} <= mounts["superlink"]
        args = compose_command(name)
        assert args[args.index("--state") + 1] == "/state"
        assert args[args.index("--base") + 1] == "/base"
    assert "--resume" in compose_command("resume") and "--resume" not in compose_command("run")


@pytest.mark.parametrize("service", BUSGEN_SERVICES)
def test_compose_commands_parse_with_the_real_cli(service, tmp_path):
    args = compose_command(service)
    params = parse_with_cli(map_paths(args, tmp_path))
    if service == "init":
        assert params["hosts"] == (read_env(COMPOSE.parent / "env.example")["BUSGEN_PUBLIC_HOST"],)


def test_compose_init_needs_the_public_host():
    with pytest.raises(KeyError, match="BUSGEN_PUBLIC_HOST"):
        compose_command("init", env={})


# --- nginx ---------------------------------------------------------------------------------


def _locations():
    """Parse the proxy config as nginx loads it: included from the http block (conf.d)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        main_conf = Path(tmp) / "nginx.conf"
        main_conf.write_text(f"events {{}}\nhttp {{\n    include {NGINX};\n}}\n")
        parsed = crossplane.parse(str(main_conf), catch_errors=False)
    assert parsed["status"] == "ok", parsed["errors"]
    included = next(c for c in parsed["config"] if c["file"] == str(NGINX))
    (server,) = [d for d in included["parsed"] if d["directive"] == "server"]
    return server, {
        " ".join(d["args"]): d["block"] for d in server["block"] if d["directive"] == "location"
    }


def _flower_api_paths():
    import flwr

    paths = set()
    for src in Path(flwr.__file__).parent.rglob("*.py"):
        paths |= set(re.findall(r'path="(/v1/[a-z/-]+)"', src.read_text(errors="ignore")))
    return paths


def test_proxy_forwards_only_fleet_api_to_the_loopback_superlink():
    server, locations = _locations()
    assert set(locations) == {"~ ^/v1/fleet/[a-z-]+$", "= /health", "/"}
    link = compose_command("superlink")
    upstream = f"https://127.0.0.1:{link[link.index('--port') + 1]}"
    for key, block in locations.items():
        passes = [d["args"][0] for d in block if d["directive"] == "proxy_pass"]
        if key == "/":
            assert not passes and ["404"] in [
                d["args"] for d in block if d["directive"] == "return"
            ]
        else:
            assert len(passes) == 1 and passes[0].startswith(upstream), key
            verify = {d["directive"]: d["args"] for d in block}
            assert verify["proxy_ssl_verify"] == ["on"]
            assert verify["proxy_ssl_trusted_certificate"] == ["/state/pki/ca.pem"]
    listen = [d["args"] for d in server["block"] if d["directive"] == "listen"]
    assert listen == [["8443", "ssl"]]  # the container port compose publishes


def test_proxy_regex_matches_every_fleet_path_and_no_other_flower_api():
    regex = re.compile(r"^/v1/fleet/[a-z-]+$")
    paths = _flower_api_paths()
    fleet = {p for p in paths if p.startswith("/v1/fleet/")}
    others = paths - fleet
    assert len(fleet) >= 10 and any(p.startswith("/v1/control/") for p in others)
    assert all(regex.match(p) for p in fleet)
    assert not any(regex.match(p) for p in others)
    assert not regex.match("/v1/fleet/../control/start-run")


def test_proxy_certificates_are_the_ones_init_ca_writes(tmp_path):
    from server.provision import CaDir

    ca = CaDir(Path("/state/pki"))
    text = NGINX.read_text()
    for path in (ca.server_cert, ca.server_key, ca.ca_cert):
        assert str(path) in text
    init = compose_command("init")
    assert init[init.index("--out") + 1] == str(ca.root)


# --- systemd -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit,command", [("busgen-site.service", "join"), ("busgen-doctor.service", "doctor")]
)
def test_unit_exec_start_parses_with_the_real_cli(unit, command, tmp_path):
    args = unit_exec(unit)
    assert args[:2] == ["busgen-site", command]
    env = read_env(DEPLOY / "site" / "site.env.example")
    params = parse_with_cli(map_paths(args, tmp_path))
    assert params["superlink"] == env["BUSGEN_SUPERLINK"]
    assert params["workdir"] == tmp_path / env["BUSGEN_WORKDIR"].lstrip("/")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    import getpass
    import sys

    bin_dir = Path(sys.executable).parent
    (tmp_path / "site.env").write_text((DEPLOY / "site" / "site.env.example").read_text())
    units = []
    for unit in sorted(SYSTEMD.iterdir()):
        text = (
            unit.read_text()
            .replace("/opt/busgen/venv/bin/", f"{bin_dir}/")
            .replace("/etc/busgen/site.env", str(tmp_path / "site.env"))
            .replace("User=busgen", f"User={getpass.getuser()}")
            .replace("Group=busgen", "")
        )
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    res = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in res.stderr.splitlines()
        if "Unknown" in line or "not executable" in line or "Failed" in line
    ]
    assert res.returncode == 0 and not problems, res.stderr


def test_site_unit_is_outbound_only_and_hardened():
    text = (SYSTEMD / "busgen-site.service").read_text()
    for setting in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/busgen",
        "KillMode=mixed",
        "Restart=on-failure",
        "User=busgen",
    ):
        assert setting in text
    join = unit_exec("busgen-site.service")
    assert "--runtime-port" not in join  # the SuperNode's runtime API stays on 127.0.0.1
    assert "OnCalendar=" in (SYSTEMD / "busgen-doctor.timer").read_text()
