"""The decision log keeps every answered decision, or counts it as lost; no line is torn or
glued onto another.

Real ``qualify serve --workers 2 --decision-log`` processes: workers killed with SIGKILL
right after answering, and a log on a 64 KiB tmpfs that fills up (skipped where mount is not
permitted). A file size limit (RLIMIT_FSIZE, EFBIG) in a child process covers the same
without root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.logs import DecisionLog
from tests.service.helpers import API_KEY, LEAD, Server

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FAILURES = "qualify_decision_log_failures"


def _send(url: str, prefix: str, singles: int, batches: int, size: int) -> list[str]:
    """Score leads with unique ids, one by one then in batches; the ids answered 200."""
    answered: list[str] = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        for i in range(singles):
            lead_id = f"{prefix}-{i}"
            r = http.post("/v1/score", json={**LEAD, "lead_id": lead_id})
            assert r.status_code == 200, r.text
            answered.append(lead_id)
        for b in range(batches):
            ids = [f"{prefix}-b{b}-{j}" for j in range(size)]
            r = http.post("/v1/score/batch", json={"leads": [{**LEAD, "lead_id": x}
                                                             for x in ids]})
            assert r.status_code == 200, r.text
            assert r.json()["ok"] == size
            answered.extend(ids)
    return answered


def _in_threads(url: str, threads: int, singles: int, batches: int, size: int) -> list[str]:
    """``_send`` from several threads at once (connections spread over the workers)."""
    results: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = _send(url, f"T{n}", singles, batches, size)
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
    return [x for r in results for x in r]


def _logged(path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each one a whole JSON record (fails on a torn or glued one)."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), data[-200:]
    records = []
    for line in data.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line that is not one JSON record: {line[:300]!r}")
    return records


def _failures(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == FAILURES:
            return sum(s.value for s in family.samples if s.name == f"{FAILURES}_total")
    pytest.fail(f"no {FAILURES}_total in /metrics")


@pytest.mark.slow
class TestKilledWorker:
    def test_answered_decisions_survive_sigkill(self, rules_dir: Path, tmp_path: Path) -> None:
        """Both workers killed with SIGKILL the moment the last answer arrives: every decision
        answered is in the log, once."""
        path = tmp_path / "decisions.jsonl"
        server = Server(rules_dir / "rules.yaml", tmp_path / "server.log",
                        args=["--decision-log", str(path)])
        try:
            server.wait_ready()
            workers = server.workers()  # looked up now: the kill follows the answers at once
            assert len(workers) == 2
            answered = _in_threads(server.url, threads=4, singles=25, batches=3, size=5)
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            logged = [r["input"]["lead_id"] for r in _logged(path)]
        finally:
            server.stop()
        assert len(answered) == 160
        assert sorted(answered) == sorted(logged)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only), unmounted at the end."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
class TestFullDisk:
    def test_full_disk_loses_whole_lines_and_counts_them(self, rules_dir: Path,
                                                         tmp_path: Path,
                                                         small_disk: Path) -> None:
        """The disk fills while two workers log: every request is still answered, every line
        in the file is a whole record, the records missing are exactly what
        qualify_decision_log_failures_total counts, and logging resumes once there is
        room again."""
        path = small_disk / "decisions.jsonl"
        filler = small_disk / "filler"
        filler.write_bytes(b"x" * 24_000)
        server = Server(rules_dir / "rules.yaml", tmp_path / "server.log",
                        args=["--decision-log", str(path)])
        try:
            server.wait_ready()
            answered = _in_threads(server.url, threads=4, singles=12, batches=2, size=4)
            records = _logged(path)
            lost = _failures(server.url)
            logged = [r["input"]["lead_id"] for r in records]
            assert len(answered) == 80
            assert len(logged) == len(set(logged))
            assert set(logged) <= set(answered)
            assert lost > 0, "the disk never filled"
            assert len(logged) + lost == len(answered)

            filler.unlink()  # room again
            assert _send(server.url, "after", singles=2, batches=0, size=0)
            assert [r["input"]["lead_id"] for r in _logged(path)][-2:] == ["after-0",
                                                                           "after-1"]
            assert _failures(server.url) == lost
        finally:
            server.stop()
        log = server.log.read_text(encoding="utf-8", errors="replace")
        started = [x for x in log.splitlines() if "decisions not written" in x]
        assert 1 <= len(started) <= 2, started  # once per run of failures and worker
        assert "Traceback" not in log


# A child process: the decision log under a file size limit (EFBIG), as an unprivileged
# user can set it. Prints the decisions written and the decisions counted as lost.
LIMITED = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from service.logs import DecisionLog

    path, limit = Path(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(
        resource.RLIMIT_FSIZE)[1]))
    lost = []
    log = DecisionLog(path, lost=lost.append)
    lead = {"lead_id": "x", "notes": "n" * 700}
    written = 0
    for i in range(20):
        written += log.write(source="api", lead={**lead, "lead_id": str(i)},
                             verdict_json=b'{"score":1}')
    lines = [log.line(source="batch", lead={**lead, "lead_id": f"b{i}"}, error={"m": 1})
             for i in range(5)]
    written += log.append(lines)
    log.close()
    print(json.dumps({"written": written, "lost": sum(lost)}))
""")


class TestFileSizeLimit:
    def test_file_size_limit_gives_whole_lines_and_exact_count(self, tmp_path: Path) -> None:
        """Past RLIMIT_FSIZE (EFBIG, and a write cut short first) the file holds only whole
        records, and written + lost is every decision."""
        path = tmp_path / "decisions.jsonl"
        done = subprocess.run([sys.executable, "-c", LIMITED, str(path), "6000"],
                              capture_output=True, text=True, check=True, timeout=30)
        counts = json.loads(done.stdout)
        records = _logged(path)
        assert counts["written"] == len(records)
        assert counts["written"] + counts["lost"] == 25
        assert 0 < counts["written"] < 25
        assert path.stat().st_size <= 6000


class TestTornTail:
    def test_a_torn_tail_stays_a_line_of_its_own(self, tmp_path: Path) -> None:
        """A line another writer left unfinished (killed mid-write) is ended before the next
        record: that record is whole, not glued onto the fragment."""
        path = tmp_path / "decisions.jsonl"
        path.write_bytes(b'{"ts":"2026-01-01T00:00:00.000Z","input":{"lead_id":"to')
        log = DecisionLog(path)
        log.write(source="api", lead={"lead_id": "1"}, verdict_json=b'{"v":1}')
        log.close()
        lines = path.read_bytes().splitlines()
        assert len(lines) == 2
        assert json.loads(lines[1])["input"] == {"lead_id": "1"}
