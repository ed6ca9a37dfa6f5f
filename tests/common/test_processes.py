"""`supervise`, the foreground loop of `busgen-server start` and `busgen-site join`, on real
child processes: a failure exit is reported with the log, a SIGTERM is a clean shutdown."""

import os
import signal
import sys

import psutil
import pytest

from common.errors import FederationError
from common.processes import spawn, supervise


def child(tmp_path, code: str):
    return spawn("helper", [sys.executable, "-c", code], dict(os.environ), tmp_path / "helper.log")


def test_failure_exit_raises_with_hint_and_log_tail(tmp_path):
    proc = child(tmp_path, "print('key not registered', flush=True); raise SystemExit(3)")
    with pytest.raises(FederationError) as err:
        supervise(proc, hint="refused by the SuperLink?")
    message = str(err.value)
    assert "helper exited with code 3 (refused by the SuperLink?)" in message
    assert str(tmp_path / "helper.log") in message and "key not registered" in message


def test_clean_exit_is_not_an_error(tmp_path):
    proc = child(tmp_path, "pass")
    supervise(proc)
    assert proc.proc.returncode == 0


def test_sigterm_stops_the_process_tree_and_restores_the_handler(tmp_path):
    """The child sends SIGTERM to this process, as systemd would; the grandchild it started
    must be stopped with it, and the caller's own SIGTERM handler is back afterwards."""
    received = []

    def mine(signum, _frame):
        received.append(signum)

    original = signal.signal(signal.SIGTERM, mine)
    try:
        proc = child(
            tmp_path,
            "import os, signal, subprocess, sys, time\n"
            "sub = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print(sub.pid, flush=True)\n"
            "time.sleep(1.5)\n"
            "os.kill(os.getppid(), signal.SIGTERM)\n"
            "time.sleep(120)\n",
        )
        supervise(proc)
        handler = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, original)
    assert received == [], "SIGTERM reached the caller's handler: supervise had not taken it"
    assert handler is mine
    assert proc.proc.returncode == -signal.SIGTERM
    grandchild = int((tmp_path / "helper.log").read_text().split()[0])
    assert not psutil.pid_exists(grandchild) or (
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    )
