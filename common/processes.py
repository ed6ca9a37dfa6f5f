"""Processes the platform starts and must stop cleanly: Flower's SuperLink, SuperNodes and
their helpers, on the coordinator and at a site alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import FederationError

BIN = Path(sys.executable).parent


def flwr_bin(name: str) -> str:
    """Flower's console scripts live next to this interpreter (the project venv)."""
    path = BIN / name
    return str(path) if path.exists() else name


def with_venv_path(env: dict[str, str]) -> dict[str, str]:
    """Flower starts its helpers (`flower-superexec`, `flwr-clientapp`) by name from PATH."""
    return env | {"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


@dataclass
class ManagedProcess:
    """A process we started, its log file and the name we show in errors."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str, args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = with_venv_path(env)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    proc = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
    )
    log.close()
    return ManagedProcess(name, proc, log_path)


def descendants(pid: int) -> list[int]:
    """PIDs of all descendants (Flower's superexec runs in its own session, so a process
    group kill misses it; collect the tree before stopping the parent)."""
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(processes: list[ManagedProcess], grace_s: float = 10.0) -> None:
    """SIGTERM each process (and its descendants), then SIGKILL whatever is left, by PID."""
    import psutil

    tree: list[int] = []
    for mp in processes:
        tree += [mp.proc.pid] + descendants(mp.proc.pid)
    for mp in processes:
        if mp.alive():
            mp.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for mp in processes:
        try:
            mp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            mp.proc.kill()
            mp.proc.wait()
    for pid in tree:
        try:
            p = psutil.Process(pid)
            p.terminate()
            p.wait(timeout=3)
        except psutil.TimeoutExpired:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def supervise(process: ManagedProcess, hint: str = "") -> None:
    """Keep `process` running in the foreground until it exits, SIGTERM or Ctrl-C; then stop it.

    This is what `busgen-server start` and `busgen-site join` do under systemd or Compose: a
    SIGTERM (or Ctrl-C) is a clean shutdown of the whole process tree; the process exiting on its
    own with a failure code raises FederationError naming `hint` (a likely cause) and the end of
    its log, so the service manager sees the failure and the operator sees why.
    """
    stopping: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        while process.alive() and not stopping:
            time.sleep(1)
    except KeyboardInterrupt:
        stopping.append(signal.SIGINT)
    finally:
        stop([process])
        signal.signal(signal.SIGTERM, previous)
    code = process.proc.returncode
    if not stopping and code not in (0, -signal.SIGTERM):
        cause = f" ({hint})" if hint else ""
        raise FederationError(
            f"{process.name} exited with code {code}{cause}; see {process.log_path}:\n"
            f"{process.log_tail(5)}"
        )
