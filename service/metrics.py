"""Prometheus metrics, one registry per app.

With several uvicorn workers each process counts for itself; ``qualify serve --workers N``
sets ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics``, whichever worker answers, adds up
every worker's files (prometheus-client's multi-process mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (crm, state) -> (jobs, age of the oldest in seconds), read from the store at each scrape
OutboxStats = Callable[[], dict[tuple[str, str], tuple[int, float]]]

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0)


class Metrics:
    """The service's metrics. Labels are bounded: route templates, not raw paths."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("qualify_http_requests", "HTTP requests answered",
                                ["method", "endpoint", "status"], registry=r)
        self.latency = Histogram("qualify_http_request_duration_seconds",
                                 "Time to answer a request", ["method", "endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter("qualify_verdicts", "Verdicts given",
                                ["grade", "status", "source"], registry=r)
        self.errors = Counter("qualify_errors", "Error answers, by kind", ["kind"],
                              registry=r)
        self.decisions_lost = Counter(
            "qualify_decision_log_failures", "Decisions (verdicts and lead errors) answered "
            "but not written to the decision log (full disk, file size limit, I/O error)",
            registry=r)
        self.reloads = Counter("qualify_rulebook_reloads", "Rule base reloads, by outcome",
                               ["outcome"], registry=r)
        self.webhooks = Counter("qualify_webhook_deliveries", "Webhook deliveries, by outcome",
                                ["source", "outcome"], registry=r)
        self.unread = Counter("qualify_webhook_unread_values", "Values a profile's "
                              "'unmapped: unknown' field could not read (scored as missing)",
                              ["source", "field"], registry=r)
        self.outbox = Counter("qualify_outbox_jobs_finished", "Write-back job attempts, by "
                              "CRM and how they ended (delivered, skipped, invalid, retried, "
                              "dead, superseded)", ["crm", "outcome"], registry=r)
        self.outbox_stats: OutboxStats | None = None
        self.rulebook = Gauge("qualify_rulebook_info", "The rule base in use (value 1)",
                              ["name", "version", "sha256"], registry=r,
                              multiprocess_mode="liveall")
        self._shown: tuple[str, str, str] | None = None
        # Children by label values: labels() takes a lock and builds a key on every call.
        self._per_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._per_verdict: dict[tuple[str, str, str], Any] = {}

    def request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (method, endpoint, status)
        children = self._per_request.get(key)
        if children is None:
            children = self._per_request[key] = (
                self.requests.labels(method, endpoint, str(status)),
                self.latency.labels(method, endpoint))
        children[0].inc()
        children[1].observe(seconds)

    def verdict(self, grade: str, status: str, source: str) -> None:
        key = (grade, status, source)
        child = self._per_verdict.get(key)
        if child is None:
            child = self._per_verdict[key] = self.verdicts.labels(grade, status, source)
        child.inc()

    def outbox_done(self, crm: str, outcome: str) -> None:
        self.outbox.labels(crm, outcome).inc()

    def show_rulebook(self, name: str, version: str, sha256: str) -> None:
        if self._shown:
            self.rulebook.labels(*self._shown).set(0)
            if not self.multiprocess:  # multi-process files cannot drop a series: it stays 0
                self.rulebook.remove(*self._shown)
        self._shown = (name, version, sha256)
        self.rulebook.labels(*self._shown).set(1)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            body = generate_latest(registry)
        else:
            body = generate_latest(self.registry)
        if self.outbox_stats is not None:  # shared by every worker: read once per scrape
            extra = CollectorRegistry()
            extra.register(_OutboxCollector(self.outbox_stats))
            body += generate_latest(extra)
        return body

    def process_exit(self) -> None:
        """Drop this worker's live gauges (multi-process mode)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


STATES = ("queued", "running", "delivered", "skipped", "invalid", "dead", "superseded")


class _OutboxCollector(Collector):
    """The outbox as the database holds it, whichever worker or instance queued it."""

    def __init__(self, stats: OutboxStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("qualify_outbox_jobs", "Write-back jobs in the store, by "
                                 "CRM and state", labels=["crm", "state"])
        oldest = GaugeMetricFamily("qualify_outbox_oldest_age_seconds", "Age of the oldest "
                                   "job waiting (queued or running), by CRM", labels=["crm"])
        stats = self.stats()
        for crm in sorted({crm for crm, _ in stats}):
            for state in STATES:
                jobs.add_metric([crm, state], stats.get((crm, state), (0, 0.0))[0])
            ages = [stats[(crm, s)][1] for s in ("queued", "running") if (crm, s) in stats]
            oldest.add_metric([crm], max(ages, default=0.0))
        yield jobs
        yield oldest
