"""The service's durable state in SQL: delivery ids, the outbox, what was written back.

SQLite by default (one file, WAL: worker processes share it); PostgreSQL when
``QUALIFY_DATABASE_URL=postgresql://...``, so that several instances share one queue. The
schema is SQLAlchemy Core tables, created and changed by Alembic migrations
(``service/migrations``), which ``qualify serve`` runs before it starts workers.

    deliveries        (source, delivery_id): one row per webhook event seen, with the
                      answer given, so a CRM's retry is recognised by any worker
    outbox_jobs       one fetch-score-write job per CRM record (see service/outbox.py)
    writeback_state   a digest of what was last written to each record: unchanged
                      values are not written again

Every statement runs in a short transaction. On SQLite a transaction takes the write lock
when it begins (``BEGIN IMMEDIATE``) and waits up to ``busy_timeout`` for it, so two
processes never deadlock upgrading a read lock; on PostgreSQL jobs are claimed with
``FOR UPDATE SKIP LOCKED``, so each job goes to one claimer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("delivery_id", sa.String(255), primary_key=True),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    sa.Column("answer", sa.LargeBinary, nullable=True),
)

QUEUED = "queued"
jobs = sa.Table(
    "outbox_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("record", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("as_of", sa.String(10), nullable=True),
    sa.Column("source", sa.String(64), nullable=True),
    sa.Column("delivery_id", sa.String(255), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("outcome", sa.JSON(none_as_null=True), nullable=True),
    sa.Index("outbox_due", "state", "not_before"),
    # At most one queued job per record: a newer event replaces the queued one's data.
    sa.Index("outbox_one_queued", "crm", "object_type", "object_id", unique=True,
             sqlite_where=sa.text("state = 'queued'"),
             postgresql_where=sa.text("state = 'queued'")),
)

writeback_state = sa.Table(
    "writeback_state", metadata,
    sa.Column("crm", sa.String(32), primary_key=True),
    sa.Column("object_type", sa.String(64), primary_key=True),
    sa.Column("object_id", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("written_at", sa.Float, nullable=False),
)

_OTHER = jobs.alias("other")
MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x7175616C  # "qual": the PostgreSQL advisory lock migrations hold


def default_url() -> str:
    """``sqlite:///`` a file in the user's state directory (XDG_STATE_HOME)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return f"sqlite:///{Path(base) / 'qualify' / 'qualify.db'}"


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def describe(url: str) -> str:
    """The URL with any password hidden, for logs."""
    return sa.make_url(normalise_url(url)).render_as_string(hide_password=True)


def digest(values: Mapping[str, Any]) -> str:
    """A stable digest of values to write (sorted keys, text values)."""
    h = hashlib.sha256()
    for key in sorted(values):
        h.update(f"{key}\0{values[key]}\0".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class NewJob:
    crm: str
    object_type: str
    object_id: str
    record: Mapping[str, Any] | None  # the record as the webhook carried it; None: fetch it
    as_of: str | None = None
    source: str | None = None
    delivery_id: str | None = None
    state: str = QUEUED
    error: str | None = None  # why a job is kept in a final state (a data error)


@dataclass(frozen=True)
class Intake:
    """One request's deliveries and jobs, for ``Store.accept_all``."""

    source: str
    items: Sequence[tuple[str | None, NewJob | None]]
    answer: bytes | None = None


@dataclass(frozen=True)
class Done:
    """A job's final state, for ``Store.finish``."""

    id: int
    state: str
    outcome: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Retry:
    """A job queued again, for ``Store.retry_later``."""

    id: int
    at: float  # epoch seconds
    error: str
    count: bool = True  # False: the attempt is given back (a 429)


@dataclass(frozen=True)
class Job:
    """A claimed job (see ``Store.claim``)."""

    id: int
    crm: str
    object_type: str
    object_id: str
    record: Mapping[str, Any] | None
    as_of: str | None
    attempts: int
    source: str | None


class Store:
    """The database: one engine (a connection pool) per process."""

    def __init__(self, url: str, *, busy_timeout: float = 10.0) -> None:
        self.url = normalise_url(url)
        parsed = sa.make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                self.url, connect_args={"timeout": busy_timeout, "check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=4,
                                           max_overflow=4)
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # Statements built once: building an upsert's ``excluded`` and compiling a fresh
        # statement cost 1.3 ms a call, ten times the database's own work.
        self._new_delivery = self._insert(deliveries).on_conflict_do_nothing().returning(
            deliveries.c.source, deliveries.c.delivery_id)
        upsert = self._insert(jobs)
        # A job already queued for the record takes the newer event's data.
        self._queue_job = upsert.on_conflict_do_update(
            index_elements=["crm", "object_type", "object_id"],
            index_where=sa.text("state = 'queued'"),  # the partial index's own predicate
            set_={name: upsert.excluded[name]
                  for name in ("record", "as_of", "source", "delivery_id", "updated_at")})
        state = self._insert(writeback_state)
        self._remember = state.on_conflict_do_update(
            index_elements=["crm", "object_type", "object_id"],
            set_={"digest": state.excluded.digest, "written_at": state.excluded.written_at})

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------------ migrations

    def migrate(self) -> None:
        """Bring the schema to the newest migration (one process at a time)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.transaction() as conn:  # SQLite: BEGIN IMMEDIATE serialises this
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ------------------------------------------------------------------------ deliveries

    def seen(self, source: str, delivery_id: str) -> tuple[bool, bytes | None]:
        """Whether a delivery was accepted before, and the answer it was given."""
        with self.transaction() as conn:
            row = conn.execute(sa.select(deliveries.c.answer).where(
                deliveries.c.source == source,
                deliveries.c.delivery_id == delivery_id)).first()
        return (False, None) if row is None else (True, row[0])

    def accept(self, source: str, items: Sequence[tuple[str | None, NewJob | None]],
               answer: bytes | None = None, now: float | None = None) -> list[bool]:
        """Record deliveries and queue their jobs in one transaction.

        ``items`` pairs a delivery id (None: no id, always new) with the job it asks for
        (None: nothing to do). Returns, per item, whether it was new: a delivery seen before
        queues nothing. ``answer`` is kept with each new delivery for retries to get."""
        return self.accept_all([Intake(source, items, answer)], now)[0]

    def accept_all(self, intakes: Sequence[Intake], now: float | None = None
                   ) -> list[list[bool]]:
        """``accept`` for several requests in one transaction (group commit). One statement
        inserts every delivery id and one queues every job: a batch of 100 HubSpot events
        costs two statements, not two hundred."""
        now = time.time() if now is None else now
        rows = {(i.source, d): {"source": i.source, "delivery_id": d, "received_at": now,
                                "answer": i.answer}
                for i in intakes for d, _ in i.items if d is not None}
        with self.transaction() as conn:
            new: set[tuple[str, str]] = set()
            if rows:
                new = {(r[0], r[1]) for r in conn.execute(self._new_delivery,
                                                          list(rows.values()))}
            out = []
            queue: list[NewJob] = []
            for intake in intakes:
                fresh = []
                for delivery_id, job in intake.items:  # an id twice: new the first time
                    key = (intake.source, delivery_id or "")
                    ok = delivery_id is None or key in new
                    new.discard(key)
                    fresh.append(ok)
                    if ok and job is not None:
                        queue.append(job)
                out.append(fresh)
            self._enqueue(conn, queue, now)
        return out

    def enqueue(self, items: Iterable[NewJob], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.transaction() as conn:
            self._enqueue(conn, list(items), now)

    def _enqueue(self, conn: Connection, items: Sequence[NewJob], now: float) -> None:
        if not items:
            return
        queued: dict[tuple[str, str, str], dict[str, Any]] = {}
        kept: list[dict[str, Any]] = []
        for job in items:
            values = {"crm": job.crm, "object_type": job.object_type,
                      "object_id": job.object_id, "state": job.state, "record": job.record,
                      "as_of": job.as_of, "source": job.source,
                      "delivery_id": job.delivery_id, "attempts": 0, "not_before": now,
                      "created_at": now, "updated_at": now, "last_error": job.error}
            if job.state == QUEUED:  # one row per record: the latest event's data
                queued[(job.crm, job.object_type, job.object_id)] = values
            else:
                kept.append(values)
        if kept:
            conn.execute(sa.insert(jobs), kept)
        if queued:
            conn.execute(self._queue_job, list(queued.values()))

    def prune(self, older_than: float) -> int:
        """Forget deliveries and finished jobs older than ``older_than`` (epoch s)."""
        with self.transaction() as conn:
            n = conn.execute(sa.delete(deliveries).where(
                deliveries.c.received_at < older_than)).rowcount
            n += conn.execute(sa.delete(jobs).where(
                jobs.c.state.in_(("delivered", "skipped", "superseded")),
                jobs.c.updated_at < older_than)).rowcount
        return int(n)

    # ------------------------------------------------------------------------ the queue

    def claim(self, limit: int, lease: float, now: float | None = None) -> list[Job]:
        """Take up to ``limit`` due jobs (queued, or running with an expired lease: their
        worker died), mark them running until ``now + lease``, count the attempt."""
        now = time.time() if now is None else now
        due = sa.or_(sa.and_(jobs.c.state == QUEUED, jobs.c.not_before <= now),
                     sa.and_(jobs.c.state == "running", jobs.c.lease_until < now))
        pick = (sa.select(jobs.c.id).where(due).order_by(jobs.c.not_before, jobs.c.id)
                .limit(limit).with_for_update(skip_locked=True))
        stmt = (sa.update(jobs).where(jobs.c.id.in_(pick.scalar_subquery()))
                .values(state="running", lease_until=now + lease,
                        attempts=jobs.c.attempts + 1, updated_at=now)
                .returning(jobs.c.id, jobs.c.crm, jobs.c.object_type, jobs.c.object_id,
                           jobs.c.record, jobs.c.as_of, jobs.c.attempts, jobs.c.source))
        with self.transaction() as conn:
            rows = conn.execute(stmt).all()
        return sorted((Job(*row) for row in rows), key=lambda j: j.id)

    def finish(self, done: Sequence[Done], now: float | None = None) -> None:
        """Jobs to a final state (delivered, skipped, dead, invalid), in one statement."""
        if not done:
            return
        now = time.time() if now is None else now
        stmt = sa.update(jobs).where(jobs.c.id == sa.bindparam("job")).values(
            state=sa.bindparam("to"), outcome=sa.bindparam("out"),
            last_error=sa.bindparam("error"), lease_until=None, updated_at=now)
        with self.transaction() as conn:
            conn.execute(stmt, [{"job": d.id, "to": d.state, "out": d.outcome,
                                 "error": d.error} for d in done])

    def retry_later(self, retries: Sequence[Retry], now: float | None = None) -> dict[int, str]:
        """Jobs back to the queue, each until its ``at``; ``count=False`` gives the attempt
        back (the CRM asked us to slow down). Returns each job's new state: queued, or
        superseded when a newer event queued the same record meanwhile."""
        if not retries:
            return {}
        now = time.time() if now is None else now
        ids = [r.id for r in retries]
        stmt = sa.update(jobs).where(jobs.c.id == sa.bindparam("job")).values(
            state=sa.bindparam("to"), not_before=sa.bindparam("at"),
            last_error=sa.bindparam("error"), lease_until=None, updated_at=now,
            attempts=jobs.c.attempts - sa.bindparam("back"))
        with self.transaction() as conn:
            newer = self._superseded(conn, ids)
            states = {r.id: "superseded" if r.id in newer else QUEUED for r in retries}
            conn.execute(stmt, [{"job": r.id, "to": states[r.id], "at": r.at,
                                 "error": r.error, "back": 0 if r.count else 1}
                                for r in retries])
        return states

    def _superseded(self, conn: Connection, ids: Sequence[int]) -> set[int]:
        """Of ``ids``, the jobs whose record has another job queued."""
        return {row[0] for row in conn.execute(sa.select(jobs.c.id).select_from(
            jobs.join(_OTHER, sa.and_(
                _OTHER.c.crm == jobs.c.crm, _OTHER.c.object_type == jobs.c.object_type,
                _OTHER.c.object_id == jobs.c.object_id)))
            .where(jobs.c.id.in_(ids), _OTHER.c.state == QUEUED, _OTHER.c.id != jobs.c.id))}

    def requeue(self, ids: Sequence[int] | None, states: Sequence[str],
                now: float | None = None) -> list[int]:
        """Admin retry: jobs in ``states`` (of ``ids``, or all) queued again now, their
        attempts reset; one whose record has a newer job queued is superseded instead.
        Returns the ids queued."""
        now = time.time() if now is None else now
        where: sa.ColumnElement[bool] = jobs.c.state.in_(states)
        if ids is not None:
            where = sa.and_(where, jobs.c.id.in_(ids))
        with self.transaction() as conn:
            found = [r[0] for r in conn.execute(sa.select(jobs.c.id).where(where)
                                                .order_by(jobs.c.id))]
            if not found:
                return []
            newer = self._superseded(conn, found)
            queued = []
            for job_id in reversed(found):  # two dead jobs of one record: the newer one
                state = "superseded" if job_id in newer else QUEUED
                conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(
                    state=state, not_before=now, attempts=0, lease_until=None,
                    updated_at=now))
                if state == QUEUED:
                    queued.append(job_id)
                    newer |= self._superseded(conn, found)
        return sorted(queued)

    def jobs(self, *, states: Sequence[str] | None = None, crm: str | None = None,
             limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        """Jobs for the admin listing, oldest first."""
        q = sa.select(jobs).where(jobs.c.id > after).order_by(jobs.c.id).limit(limit)
        if states:
            q = q.where(jobs.c.state.in_(states))
        if crm:
            q = q.where(jobs.c.crm == crm)
        with self.transaction() as conn:
            return [dict(row._mapping) for row in conn.execute(q)]

    def stats(self, now: float | None = None) -> dict[tuple[str, str], tuple[int, float]]:
        """(crm, state) -> (jobs, age in seconds of the oldest)."""
        now = time.time() if now is None else now
        q = sa.select(jobs.c.crm, jobs.c.state, sa.func.count(),
                      sa.func.min(jobs.c.created_at)).group_by(jobs.c.crm, jobs.c.state)
        with self.transaction() as conn:
            return {(crm, state): (int(n), max(0.0, now - float(oldest)))
                    for crm, state, n, oldest in conn.execute(q)}

    # ------------------------------------------------------------------------ write-back

    def written(self, crm: str, object_type: str, ids: Sequence[str]) -> dict[str, str]:
        """The digest last written to each of ``ids``."""
        if not ids:
            return {}
        t = writeback_state
        with self.transaction() as conn:
            return {row[0]: row[1] for row in conn.execute(
                sa.select(t.c.object_id, t.c.digest).where(
                    t.c.crm == crm, t.c.object_type == object_type, t.c.object_id.in_(ids)))}

    def remember(self, crm: str, object_type: str, digests: Mapping[str, str],
                 now: float | None = None) -> None:
        """What was written to each record (id -> digest), one statement."""
        if not digests:
            return
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.execute(self._remember, [
                {"crm": crm, "object_type": object_type, "object_id": object_id,
                 "digest": value, "written_at": now} for object_id, value in digests.items()])


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer, and a kill -9 loses no committed job (with
    # synchronous=NORMAL). Turning it on needs the file to itself, which the busy timeout
    # does not wait for: a process starting beside another tries again for a while.
    deadline = time.monotonic() + 10
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
