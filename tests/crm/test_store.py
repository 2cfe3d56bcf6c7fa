"""The store on real SQLite and a real PostgreSQL server: migrations, delivery ids, the queue.

Every test runs on both databases (PostgreSQL is started by tests/postgres.py; where it
cannot run, those cases skip and say why).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.store import Done, NewJob, Retry, Store, describe, normalise_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    s.migrate()
    yield s
    s.close()


def _job(object_id: str, **extra: object) -> NewJob:
    return NewJob("hubspot", "contacts", object_id, None, "2026-01-01", "hubspot", **extra)


class TestSchema:
    def test_migrations_are_idempotent_and_at_head(self, store: Store) -> None:
        """Migrating again changes nothing; the revision is the newest."""
        store.migrate()
        assert store.revision() == "0001"

    def test_concurrent_migrations_do_not_collide(self, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
        """Four processes' worth of start-ups migrating one fresh database at once."""
        for url in (f"sqlite:///{tmp_path / 'fresh.db'}",
                    request.getfixturevalue("postgres_url")):
            stores = [Store(url) for _ in range(4)]
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda s: s.migrate(), stores))
            assert {s.revision() for s in stores} == {"0001"}
            for s in stores:
                s.close()

    def test_urls(self) -> None:
        """postgresql:// uses psycopg 3; passwords never reach a log line."""
        assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
        assert normalise_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
        assert "secret" not in describe("postgresql://u:secret@h/db")


class TestDeliveries:
    def test_a_delivery_is_accepted_once(self, store: Store) -> None:
        """The second time an id arrives it queues nothing and its first answer is kept."""
        assert store.accept("hubspot", [("e1", _job("1"))], b'{"a":1}') == [True]
        assert store.accept("hubspot", [("e1", _job("1"))], b'{"a":2}') == [False]
        assert store.seen("hubspot", "e1") == (True, b'{"a":1}')
        assert store.seen("pipedrive", "e1") == (False, None)
        assert len(store.jobs()) == 1

    def test_concurrent_retries_queue_one_job(self, store: Store) -> None:
        """Eight workers receiving the same delivery at once: one is new, one job."""
        def take(_: int) -> bool:
            return store.accept("hubspot", [("same", _job("2"))])[0]

        with ThreadPoolExecutor(8) as pool:
            fresh = list(pool.map(take, range(8)))
        assert fresh.count(True) == 1
        assert len(store.jobs()) == 1

    def test_prune_forgets_old_deliveries_and_finished_jobs(self, store: Store) -> None:
        """After the retention, a delivery id is new again; queued jobs are never pruned."""
        store.accept("hubspot", [("old", _job("3")), ("older", _job("4"))], now=100.0)
        (claimed, _) = store.claim(1, 30, now=200.0), None
        store.finish([Done(claimed[0].id, "delivered")], now=200.0)
        assert store.prune(older_than=1000.0) == 3  # two deliveries, one finished job
        assert [j["state"] for j in store.jobs()] == ["queued"]
        assert store.accept("hubspot", [("old", None)]) == [True]


class TestQueue:
    def test_claims_never_overlap(self, store: Store) -> None:
        """Four claimers racing over 300 jobs: each job is claimed exactly once."""
        store.enqueue([_job(str(i)) for i in range(300)])
        seen: list[int] = []
        lock = threading.Lock()

        def claimer() -> None:
            while True:
                jobs = store.claim(7, 60)
                if not jobs:
                    return
                with lock:
                    seen.extend(j.id for j in jobs)

        threads = [threading.Thread(target=claimer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(seen) == sorted(set(seen))
        assert len(seen) == 300

    def test_an_expired_lease_is_claimed_again(self, store: Store) -> None:
        """A worker that died mid-job: after its lease the job is claimed again, its
        attempt counted."""
        store.enqueue([_job("5")])
        now = time.time()
        (first,) = store.claim(10, 30, now=now)
        assert store.claim(10, 30, now=now + 29) == []
        (again,) = store.claim(10, 30, now=now + 31)
        assert (again.id, again.attempts) == (first.id, 2)

    def test_a_newer_event_replaces_the_queued_data(self, store: Store) -> None:
        """Jobs for one record coalesce while queued; the newest record wins."""
        store.enqueue([_job("6", delivery_id="a")])
        store.enqueue([NewJob("hubspot", "contacts", "6", {"v": 2}, None, "hubspot", "b")])
        (job,) = store.jobs()
        assert (job["record"], job["delivery_id"]) == ({"v": 2}, "b")

    def test_a_failed_job_with_a_newer_one_queued_is_superseded(self, store: Store) -> None:
        """The running job fails while a newer event queued the same record: the newer one
        carries on, the failed one is superseded (never two queued jobs for a record)."""
        store.enqueue([_job("7")])
        (running,) = store.claim(10, 30)
        store.enqueue([_job("7")])
        assert store.retry_later([Retry(running.id, time.time() + 5, "boom")]) == {
            running.id: "superseded"}
        assert sorted(j["state"] for j in store.jobs()) == ["queued", "superseded"]

    def test_a_retry_given_back_keeps_the_attempt_count(self, store: Store) -> None:
        """count=False (a 429) gives the claimed attempt back; count=True keeps it."""
        store.enqueue([_job("20"), _job("21")])
        a, b = store.claim(10, 30)
        store.retry_later([Retry(a.id, 0.0, "429", count=False), Retry(b.id, 0.0, "503")])
        attempts = {j["id"]: j["attempts"] for j in store.jobs()}
        assert attempts == {a.id: 0, b.id: 1}

    def test_a_batch_with_a_repeated_delivery_id_is_new_once(self, store: Store) -> None:
        """The same event twice in one request (HubSpot ids are not unique): new once."""
        assert store.accept("hubspot", [("x", _job("22")), ("x", _job("22")),
                                        (None, _job("23"))]) == [True, False, True]
        assert len(store.jobs()) == 2

    def test_admin_retry_requeues_dead_jobs(self, store: Store) -> None:
        """Dead jobs are queued again with their attempts reset; others are untouched."""
        store.enqueue([_job("8"), _job("9")])
        a, b = store.claim(10, 30)
        store.finish([Done(a.id, "dead", error="HubSpot answered 400"),
                      Done(b.id, "delivered")])
        assert store.requeue(None, ["dead"]) == [a.id]
        states = {j["id"]: (j["state"], j["attempts"]) for j in store.jobs()}
        assert states == {a.id: ("queued", 0), b.id: ("delivered", 1)}

    def test_stats_count_jobs_per_crm_and_state(self, store: Store) -> None:
        """What /metrics shows: counts and the oldest job's age."""
        store.enqueue([_job("10"), _job("11")], now=time.time() - 60)
        stats = store.stats()
        count, age = stats[("hubspot", "queued")]
        assert count == 2
        assert 59 <= age < 120

    def test_writeback_state_is_per_record(self, store: Store) -> None:
        """The digest of what was written, per record, replaced by the next write."""
        store.remember("hubspot", "contacts", {"12": "d1"})
        store.remember("hubspot", "contacts", {"12": "d2", "13": "d3"})
        assert store.written("hubspot", "contacts", ["12", "13", "14"]) == {"12": "d2",
                                                                           "13": "d3"}


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    """Workers share the file: readers never block the writer, and a kill -9 loses no
    committed job (WAL, synchronous=NORMAL)."""
    s = Store(f"sqlite:///{tmp_path / 'w.db'}")
    s.migrate()
    with s.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    s.close()
