"""The write-back outbox: fetch, score and write each queued CRM record, durably.

A webhook stores its job (service/store.py) before it is answered; a background thread in
every worker process then runs the due jobs:

    claim up to 100 due jobs           (a lease: a worker that dies frees its jobs after
                                        ``outbox_lease`` seconds; claims never overlap)
    per CRM, object type and profile:
      fetch the records a job lacks    (thin events; one batch call per 100 on HubSpot)
      score them with the current rule base and the event's date (``as_of``)
      compare with what the CRM holds  (or with what we last wrote): unchanged, no write
      write the changed ones           (one batch call per 100 on HubSpot)
    each job ends as
      delivered    written
      skipped      nothing to write (unchanged; the record is gone; no write-back set up)
      invalid      the rule base cannot read the record: kept with the reason, not retried
      queued       the CRM failed as a whole: again after 2 s, 4 s, 8 s ... (jitter, capped)
                   or after the CRM's Retry-After, which spends no attempt
      dead         a per-record error, or ``outbox_max_attempts`` spent: kept with the
                   CRM's error; ``POST /v1/outbox/retry`` queues it again
      superseded   a newer event queued the same record meanwhile

A job runs once: claims are exclusive, and the write-back check makes a job that is run
again after a crash (in flight when its worker was killed) find its values already there.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from qualify import LeadError, Profile, QualifyError
from service.crm import Client, CrmError, text, values
from service.metrics import Metrics
from service.settings import Settings
from service.state import Registry
from service.store import Done, Job, Retry, Store, digest

log = logging.getLogger("qualify.outbox")

CLAIM = 100
LINGER = 0.05  # seconds a woken outbox waits for more jobs before it claims
PRUNE_EVERY = 300.0  # seconds
SCORED_AT = "scored_at"


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before retry ``attempts``: doubling from ``base``, capped, with jitter (a
    random half to all of it, so that jobs failed together do not retry together)."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * random.uniform(0.5, 1.0)


def read_properties(profile: Profile) -> list[str]:
    """The CRM properties a profile reads: ``properties.X`` paths and plain names."""
    out: list[str] = []
    for path in profile.sources():
        name = path.split(".")[1] if path.startswith("properties.") and "." in path else \
            path if "." not in path else None
        if name and name not in out and name not in ("properties", "id", "objectId"):
            out.append(name)
    return sorted(out)


class Outbox:
    """Runs due jobs in a background thread (``start``/``stop``) or a round at a time."""

    def __init__(self, store: Store, registry: Registry, settings: Settings,
                 metrics: Metrics, clients: Mapping[str, Client]) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.clients = dict(clients)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned = 0.0
        self._done_now: list[tuple[Job, Done]] = []  # this round's outcomes, written at once
        self._retries: list[tuple[Job, Retry]] = []
        self._written: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self.warm_ups: list[Callable[[], None]] = []  # run once in the thread, at start

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="qualify-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued in this process: look now, not at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
            self._thread = None
        for client in self.clients.values():
            client.close()

    def _run(self) -> None:
        for warm_up in self.warm_ups:
            try:
                warm_up()
            except Exception as e:  # the CRM may be away: the loop guard waits for it
                log.warning("outbox warm-up failed: %s", e)
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the database is away, say: keep the thread, try again
                log.exception("outbox round failed")
                busy = 0
            if not busy and self._wake.wait(self.settings.outbox_poll):
                self._wake.clear()
                self._stop.wait(LINGER)  # let a burst of webhooks queue together

    def run_once(self, now: float | None = None) -> int:
        """Claim and run one round of due jobs; how many were claimed."""
        now = time.time() if now is None else now
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            self.store.prune(now - self.settings.delivery_retention)
        claimed = self.store.claim(CLAIM, self.settings.outbox_lease, now)
        groups: dict[tuple[str, str, str], list[Job]] = defaultdict(list)
        for job in claimed:
            groups[(job.crm, job.object_type, job.source or job.crm)].append(job)
        try:
            for (crm, object_type, source), group in groups.items():
                self._run_group(crm, object_type, source, group)
        finally:
            self._flush()
        return len(claimed)

    def _flush(self) -> None:
        """Write the round's outcomes: one statement each for final states, retries and
        write-back digests (a job left unwritten by a crash is claimed again)."""
        for (crm, object_type), digests in self._written.items():
            self.store.remember(crm, object_type, digests)
        self._written.clear()
        done, self._done_now = self._done_now, []
        self.store.finish([d for _, d in done])
        for job, d in done:
            self.metrics.outbox_done(job.crm, d.state)
            if d.state in ("dead", "invalid"):
                log.warning("write-back job %s", d.state, extra={"fields": {
                    "job": job.id, "crm": job.crm, "object_type": job.object_type,
                    "object_id": job.object_id, "error": d.error}})
        retries, self._retries = self._retries, []
        states = self.store.retry_later([r for _, r in retries])
        for job, r in retries:
            state = states[r.id]
            self.metrics.outbox_done(job.crm, "retried" if state == "queued" else state)

    # ------------------------------------------------------------------ one group

    def _done(self, job: Job, state: str, *, outcome: Mapping[str, Any] | None = None,
              error: str | None = None) -> None:
        self._done_now.append((job, Done(job.id, state, outcome, error)))

    def _failed(self, job: Job, e: CrmError) -> None:
        limit = self.settings.outbox_max_attempts
        if not e.retry or (e.wait is None and job.attempts >= limit):
            self._done(job, "dead", error=str(e))
            return
        delay = e.wait if e.wait is not None else backoff(
            job.attempts, self.settings.outbox_backoff, self.settings.outbox_backoff_max)
        self._retries.append((job, Retry(job.id, time.time() + delay, str(e),
                                         count=e.wait is None)))

    def _run_group(self, crm: str, object_type: str, source: str, group: list[Job]) -> None:
        snapshot = self.registry.current
        profile = snapshot.profiles.get(source)
        client = self.clients.get(crm)
        if profile is None:
            for job in group:
                self._done(job, "dead", error=f"no mapping profile '{source}' is loaded")
            return
        names = list(profile.write_back.values())
        compared = [p for item, p in profile.write_back.items() if item != SCORED_AT]
        records: dict[int, Mapping[str, Any] | None] = {}
        fetched: set[int] = set()
        to_fetch: list[Job] = []
        for job in group:
            if job.record is not None and client is not None:
                try:  # Pipedrive: field names and option labels from its API
                    prepared = client.prepare(object_type, job.record)
                    lacking = client.lacks(object_type, prepared, profile.sources())
                except CrmError as e:
                    self._failed(job, e)
                    continue
                if lacking:
                    to_fetch.append(job)
                else:
                    records[job.id] = prepared
            elif job.record is not None:
                records[job.id] = job.record
            elif client is not None:
                to_fetch.append(job)
            else:
                self._done(job, "skipped", error=f"{crm} write-back is not configured: "
                           "nothing to fetch the record with")
        if to_fetch and client is not None:
            ids = sorted({j.object_id for j in to_fetch})
            try:
                found = client.fetch(object_type, ids, read_properties(profile) + names)
            except CrmError as e:
                for job in to_fetch:
                    self._failed(job, e)
                found = None
            if found is not None:
                for job in to_fetch:
                    records[job.id] = found.get(job.object_id)
                    fetched.add(job.id)

        updates: dict[str, dict[str, Any]] = {}
        waiting: dict[str, list[tuple[Job, str]]] = defaultdict(list)
        last = self.store.written(crm, object_type, sorted({j.object_id for j in group}))
        now = dt.datetime.now(dt.UTC)
        for job in group:
            if job.id not in records:
                continue
            record = records[job.id]
            if record is None:
                self._done(job, "skipped", error=f"{crm} has no {object_type} "
                           f"{job.object_id} (deleted or merged)")
                continue
            try:
                lead = profile.apply(record)
                as_of = dt.date.fromisoformat(job.as_of) if job.as_of else None
                verdict = snapshot.engine.score(lead, as_of=as_of)
            except LeadError as e:
                self._done(job, "invalid", error=f"{e.field}: {e.reason}" if e.field
                           else e.reason)
                continue
            except QualifyError as e:
                self._done(job, "invalid", error=str(e))
                continue
            if client is None or not names:
                self._done(job, "skipped", outcome={"score": verdict.score},
                           error=f"{crm} write-back is not configured (token or "
                           "write_back)")
                continue
            props = values(verdict, profile.write_back, now)
            wanted = {p: text(props[p]) for p in compared}
            value_digest = digest(wanted)
            if job.id in fetched:
                unchanged = client.current(record, compared) == wanted
            else:
                unchanged = last.get(job.object_id) == value_digest
            if unchanged:
                self._done(job, "skipped", outcome={"unchanged": True, **wanted})
                continue
            updates[job.object_id] = props
            waiting[job.object_id].append((job, value_digest))
        if not updates or client is None:
            return
        try:
            results = client.write(object_type, updates)
        except CrmError as e:
            for jobs in waiting.values():
                for job, _ in jobs:
                    self._failed(job, e)
            return
        for object_id, error in results.items():
            for job, value_digest in waiting.get(object_id, []):
                if error is None:
                    self._written[(crm, object_type)][object_id] = value_digest
                    self._done(job, "delivered", outcome={
                        k: text(v) for k, v in updates[object_id].items()})
                else:
                    self._done(job, "dead", error=error)


def run_process(settings: Settings) -> None:
    """The outbox as a process of its own (``qualify outbox``; ``qualify serve`` starts one):
    the webhook workers then spend no time, and hold no lock, on CRM calls. It follows the
    workers' rule base reloads through their reload channel. Stops on SIGTERM or SIGINT."""
    import asyncio
    import signal

    from service.crm.clients import crm_clients
    from service.lifetime import die_with_parent
    from service.logs import LogSetup
    from service.store import default_url

    die_with_parent()
    if settings.outbox_nice:
        os.nice(settings.outbox_nice)
    logs = LogSetup(settings)
    metrics = Metrics()
    registry = Registry(settings, metrics)
    registry.load()
    store = Store(settings.database_url or default_url())
    store.migrate()
    clients = crm_clients(settings)
    outbox = Outbox(store, registry, settings, metrics, clients)
    outbox.start()

    async def follow() -> None:
        # Signals through the loop: a handler that took a lock (Event.set) deadlocked when a
        # second SIGTERM (parent death, then terminate) arrived while it held it.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        # said only now: a test (or an operator) that stops it on this line gets a clean stop
        log.info("outbox running", extra={"fields": {"write_back": sorted(clients),
                                                     "pid": os.getpid()}})
        task = asyncio.create_task(registry.follow()) if registry.channel else None
        await stopping.wait()
        if task is not None:
            task.cancel()

    try:
        asyncio.run(follow())
    finally:
        outbox.stop()
        store.close()
        metrics.process_exit()
        log.info("outbox stopped")
        logs.close()

