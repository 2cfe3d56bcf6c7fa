"""`kill -9` of `qualify batch` (issue 13, item 10).

Its workers waited for work forever (forked ones, and a forkserver's), and its hidden
.partial files stayed. Now workers die with the process that forked them (the forkserver
dies with the command), output is written to unnamed files until the run commits, and a
named .partial file whose writer is provably gone is removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.batch.conftest import synthetic, write_leads, writing_into
from tests.conftest import ROOT

COMMAND = [sys.executable, "-c", "from qualify.cli import main; main()", "batch"]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (a forkserver's workers too), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            todo += [c for c in children if c not in found]
            found.update(children)
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent (init, once the command is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def batch(src: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*COMMAND, str(src), "--out", str(out), "--workers", "2",
                             "--as-of", "2026-01-01"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
class TestKill9:
    @pytest.mark.parametrize("fmt", ["csv", "parquet"])  # workers forked; from a forkserver
    def test_no_worker_and_no_file_is_left(self, tmp_path: Path, fmt: str) -> None:
        """SIGKILL to the command alone, mid-run: within 5 s no process it started is
        left, its folder holds no file, and the next run to the same output leaves only
        its outputs."""
        src = write_leads(tmp_path / f"leads.{fmt}", synthetic(30_000, seed=1))
        folder = tmp_path / "out"
        folder.mkdir()
        proc = batch(src, folder / "o.parquet")
        try:
            deadline = time.monotonic() + 30
            while not (writing_into(proc.pid, folder) and len(descendants(proc.pid)) >= 2):
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.02)
            started = descendants(proc.pid)  # workers, and a forkserver's helpers
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 5
            while any(alive(p) for p in started) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [p for p in started if alive(p)] == []
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a failed test leaves no orphans
            proc.communicate(timeout=10)
        assert os.listdir(folder) == []
        small = write_leads(tmp_path / f"small.{fmt}", synthetic(50, seed=2))
        again = batch(small, folder / "o.parquet")
        _, stderr = again.communicate(timeout=60)
        assert again.returncode == 0, stderr
        assert sorted(os.listdir(folder)) == ["o.errors.csv", "o.parquet"]


ORPHAN = """
import os, sys, time
from pathlib import Path
from qualify.batch import orphans
if os.fork():
    os._exit(0)  # the parent ends before its child asks to die with it
Path(sys.argv[1]).write_text(str(os.getpid()))
while os.getppid() == orphans._forked_by:
    time.sleep(0.01)
orphans.die_with_parent()
Path(sys.argv[2]).write_text("still running")
"""


def test_a_worker_whose_parent_is_already_gone_exits(tmp_path: Path) -> None:
    """The race: the parent ends before the child's prctl, so no signal will ever come.
    The child sees another parent and exits instead of running on."""
    pid_file, survived = tmp_path / "pid", tmp_path / "survived"
    subprocess.run([sys.executable, "-c", ORPHAN, str(pid_file), str(survived)], cwd=ROOT,
                   check=True, timeout=30)
    deadline = time.monotonic() + 10
    while not pid_file.exists() or pid_file.read_text() == "":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child = int(pid_file.read_text())
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(child)
    assert not survived.exists()


class TestStalePartials:
    def test_only_files_of_dead_writers_are_removed(self, tmp_path: Path) -> None:
        """The next run for the same output removes a .partial file whose writer's pid is
        gone and whose lock nobody holds; it keeps one a live writer holds locked (even
        with a pid that is not alive here: another container's), and others' files."""
        gone = subprocess.Popen(["true"])
        gone.wait()
        stale = tmp_path / f".o.csv.{gone.pid}.0123abcd.partial"
        locked = tmp_path / f".o.csv.{gone.pid}.89abcdef.partial"
        other = tmp_path / f".other.csv.{gone.pid}.0123abcd.partial"
        for f in (stale, locked, other):
            f.write_bytes(b"half a file")
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); "
             "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
             str(locked)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            src = write_leads(tmp_path / "leads.csv", synthetic(20, seed=1))
            done = subprocess.run([*COMMAND, str(src), "--out", str(tmp_path / "o.csv"),
                                   "--workers", "1", "--as-of", "2026-01-01"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
        finally:
            holder.kill()
            holder.communicate()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["leads.csv", "o.csv", "o.errors.csv", locked.name, other.name])

    def test_a_named_partial_is_locked_by_its_writer(self, tmp_path: Path) -> None:
        """Where an unnamed file cannot be made, the .partial file carries the writer's pid
        and is locked while the writer lives."""
        from qualify.batch.writers import AtomicFile

        temp = AtomicFile(tmp_path / "o.csv", anonymous=False)
        try:
            (name,) = os.listdir(tmp_path)
            assert name.startswith(f".o.csv.{os.getpid()}.") and name.endswith(".partial")
            with open(tmp_path / name, "rb") as f, pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            temp.write(b"done\n")
            temp.commit()
        finally:
            temp.abort()
        assert os.listdir(tmp_path) == ["o.csv"]
