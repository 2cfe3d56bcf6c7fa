"""Request id, access log and request metrics, as one pure ASGI middleware.

The request id is the caller's ``X-Request-ID`` when it looks safe, else a new one; it is
echoed on the response and set in a context variable for every log line of the request.
Routes add fields to the access log line through ``log_fields(request)``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import ACCESS_LOGGER, REQUEST_ID, LogSetup
from service.metrics import Metrics

log = logging.getLogger(ACCESS_LOGGER)

_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: debug level only
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def log_fields(request: Request) -> dict[str, Any]:
    """The access-log fields of this request, for routes to add to."""
    fields: dict[str, Any] = request.scope.setdefault("qualify.log", {})
    return fields


# New ids: a random per-process prefix and a counter (unique, and no urandom per request).
_PREFIX = f"{os.getpid() & 0xFFFF:04x}{secrets.token_hex(6)}"
_COUNTER = itertools.count(1)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SAFE_ID.fullmatch(value):
            return bytes(value).decode("ascii")
    return f"{_PREFIX}{next(_COUNTER):012x}"


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True,
                 logs: Callable[[], LogSetup | None] = lambda: None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.logs = logs  # the service's log setup, once started: the access line's fast path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = scope["qualify.request_id"] = _request_id(scope)
        fields: dict[str, Any] = {}
        scope["qualify.log"] = fields
        token = REQUEST_ID.set(request_id)
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:  # a 500's handler sets it itself
                    headers.append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            # Metric labels stay bounded: any other method token is "OTHER".
            self.metrics.request(method if method in _METHODS else "OTHER", endpoint, status,
                                 elapsed)
            if self.access_log:
                level = logging.DEBUG if scope["path"] in _QUIET else logging.INFO
                if log.isEnabledFor(level):
                    path = scope["path"]
                    line = {"method": method, "path": path, "endpoint": endpoint,
                            "status": status, "latency_ms": round(elapsed * 1000, 3),
                            **fields}
                    logs = self.logs()
                    if logs is None or not logs.access(level, f"{method} {path} {status}",
                                                       request_id, line):
                        # makeRecord: no stack walk for the caller
                        log.handle(log.makeRecord(log.name, level, __file__, 0, "%s %s %d",
                                                  (method, path, status), None,
                                                  extra={"fields": line}))
            REQUEST_ID.reset(token)
