"""End to end: ``qualify serve`` as a real process (uvicorn, 2 workers) on 127.0.0.1.

Scores over HTTP, reloads the rule base 6 times while 4 threads keep scoring (no request
may fail, and both workers end on the new rule base), checks the workers' metrics add up,
and stops the server with SIGINT.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qualify import Engine, load_rulebook
from tests.service.helpers import ADMIN_KEY, API_KEY, LEAD, Server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(rules_dir: Path, tmp_path: Path) -> Iterator[Server]:
    s = Server(rules_dir / "rules.yaml", tmp_path / "server.log")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_serve_score_reload_under_load_stop(server: Server, rules_dir: Path) -> None:
    """A real server scores, survives reloads under load without a failed request, and
    stops cleanly."""
    rules = rules_dir / "rules.yaml"
    versions = [rules.read_text(encoding="utf-8")]
    versions.append(versions[0].replace("version: 1", "version: 2", 1))
    shas = [hashlib.sha256(v.encode()).hexdigest() for v in versions]
    auth = {"Authorization": f"Bearer {API_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    with httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.post("/v1/score?as_of=2026-01-01", json=LEAD, headers=auth)
        assert r.status_code == 200
        with Engine(load_rulebook(rules)) as engine:
            expected = engine.score(LEAD, as_of=dt.date(2026, 1, 1))
        assert r.json() == expected.model_dump(mode="json")
        assert r.json()["rulebook"]["sha256"] == shas[0]
        assert http.post("/v1/score", json=LEAD).status_code == 401

        outcomes: Counter[str] = Counter()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                while not stop.is_set():
                    try:
                        resp = c.post("/v1/score", json=LEAD, headers=auth)
                        outcomes[str(resp.status_code)] += 1
                    except httpx.HTTPError as e:
                        outcomes[type(e).__name__] += 1

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                rules.write_text(versions[(i + 1) % 2], encoding="utf-8")
                reload = http.post("/v1/rulebook/reload", headers=admin)
                assert reload.status_code == 200, reload.text
                assert reload.json()["rulebook"]["sha256"] == shas[(i + 1) % 2]
                time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert set(outcomes) == {"200"}, outcomes
        assert outcomes["200"] > 20

        # The last reload installed versions[0]: both workers converge on it (their
        # metrics are added up across processes, one live rule base per worker, and one for
        # the outbox process, which follows the workers' reloads).
        deadline = time.monotonic() + 5
        live: list[str] = []
        while time.monotonic() < deadline:
            live = [line for line in http.get("/metrics").text.splitlines()
                    if line.startswith("qualify_rulebook_info{") and line.endswith(" 1.0")]
            if len(live) == 3 and all(shas[0] in line for line in live):
                break
            time.sleep(0.1)
        assert len(live) == 3, live
        assert all(shas[0] in line for line in live), live
        seen = {http.post("/v1/score", json=LEAD, headers=auth).json()["rulebook"]["sha256"]
                for _ in range(8)}
        assert seen == {shas[0]}

    assert server.stop() == 0
    log = server.log.read_text(encoding="utf-8", errors="replace")
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert sum(x["message"] == "stopped" for x in lines) == 2
    assert "Traceback" not in log


def test_a_restarted_worker_serves_the_activated_rule_base(server: Server,
                                                           rules_dir: Path) -> None:
    """Issue 13, item 7: a worker that starts while the file on disk is broken serves what
    the last reload activated (it crash-looped: 15 restarts in 25 s, half the capacity)."""
    rules = rules_dir / "rules.yaml"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        rules.write_text(rules.read_text(encoding="utf-8").replace("version: 1", "version: 2"),
                         encoding="utf-8")
        activated = http.post("/v1/rulebook/reload", headers=admin).json()["rulebook"]
        rules.write_text(rules.read_text(encoding="utf-8")[:700], encoding="utf-8")  # torn

        before = set(server.workers())
        assert len(before) == 2, before
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = set(server.workers())
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and victim not in now, now
        time.sleep(3)  # a crash loop would replace the new worker again and again
        assert set(server.workers()) == now
        seen = {json.dumps(httpx.post(f"{server.url}/v1/score", json=LEAD, headers=auth,
                                      timeout=10).json()["rulebook"])
                for _ in range(10)}  # a connection each: the kernel spreads them
        assert seen == {json.dumps(activated)}
        live = [line for line in http.get("/metrics").text.splitlines()
                if line.startswith("qualify_rulebook_info{") and line.endswith(" 1.0")
                and f'pid="{victim}"' not in line]  # a killed process's gauge file stays
        assert live and all(activated["sha256"] in line for line in live), "\n".join(live)
