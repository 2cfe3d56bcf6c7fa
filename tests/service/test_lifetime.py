"""``kill -9`` of a real ``qualify serve --workers 2``: nothing it started outlives it; and
a process started by a serve that has already died stops at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service.helpers import Serve, session

CHECK = "from service.lifetime import die_with_parent; die_with_parent(); print('running')"


@pytest.mark.slow
def test_kill_9_of_serve_ends_its_workers_and_frees_the_port(tmp_path: Path) -> None:
    """The workers (and the outbox) get SIGTERM when serve dies by SIGKILL: within a few
    seconds none is left and the port can be bound again (before: the workers kept
    serving on it)."""
    server = Serve(tmp_path, "--workers", "2").wait_ready()
    pid = server.process.pid
    try:
        started = session(pid)
        workers = [p for p, command in started.items() if "multiprocessing.spawn" in command]
        assert len(workers) == 2, started
        os.kill(pid, signal.SIGKILL)
        server.process.wait(timeout=5)
        deadline = time.monotonic() + 8
        while left := session(pid):
            assert time.monotonic() < deadline, f"still running after serve died: {left}"
            time.sleep(0.1)
        with socket.socket() as s:  # as uvicorn binds it
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", server.port))
            s.listen()
    finally:
        server.stop()


@pytest.mark.parametrize(("parent", "runs"), [("own", True), ("gone", False), ("", True)])
def test_a_process_whose_serve_died_before_it_asked_stops(parent: str, runs: bool) -> None:
    """Started by serve (QUALIFY_SERVE_PID is its parent): it runs. Its serve died before
    it asked to die with it (the pid is no longer its parent): it stops at once, saying
    why. Not started by serve: it runs."""
    env = {k: v for k, v in os.environ.items() if k != "QUALIFY_SERVE_PID"}
    if parent:
        env["QUALIFY_SERVE_PID"] = str(os.getpid() if parent == "own" else 2**22 + 1)
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    if runs:
        assert (done.returncode, done.stdout) == (0, "running\n"), done.stderr
    else:
        assert done.returncode == 1
        assert "is gone: stopping" in done.stderr
