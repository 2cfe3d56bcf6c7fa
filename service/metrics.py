"""Prometheus metrics, one registry per app.

With several uvicorn workers each process counts for itself; ``qualify serve --workers N``
sets ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics``, whichever worker answers, adds up
every worker's files (prometheus-client's multi-process mode).
"""

from __future__ import annotations

import os
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
        self.reloads = Counter("qualify_rulebook_reloads", "Rule base reloads, by outcome",
                               ["outcome"], registry=r)
        self.webhooks = Counter("qualify_webhook_deliveries", "Webhook deliveries, by outcome",
                                ["source", "outcome"], registry=r)
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
            return generate_latest(registry)
        return generate_latest(self.registry)

    def process_exit(self) -> None:
        """Drop this worker's live gauges (multi-process mode)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
