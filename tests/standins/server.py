"""Plumbing shared by the stand-ins: a real server thread, scripted faults, a rolling limit,
and the request pipeline every stand-in endpoint goes through.

`serving` binds and listens on the socket before uvicorn starts, so the URL can be handed to
anything, including a separate `qualify serve` subprocess, as soon as it is yielded.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

Handler = Callable[[Request], Awaitable[Response]]


@contextmanager
def serving(app: ASGIApp, *, start_timeout: float = 10.0) -> Iterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port and yield its base URL (no trailing /)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections made before uvicorn is up wait in the backlog
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,  # a scripted delay in flight must not hold up the test
    )
    server = uvicorn.Server(config)
    # Signal handlers are only installed from the main thread; this one never is.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"standin-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the stand-in server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stand-in server did not start in {start_timeout} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


@dataclass(frozen=True)
class Fault:
    """A scripted answer: wait `delay` s, then answer `status` (below 400: answer normally)."""

    status: int
    retry_after: float | None = None
    delay: float = 0.0

    async def wait(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)


class Faults:
    """A thread-safe queue of scripted faults; each request takes at most one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def add(self, status: int, times: int, retry_after: float | None, delay: float) -> None:
        with self._lock:
            self._queue.extend(Fault(status, retry_after, delay) for _ in range(times))

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None


class RollingWindow:
    """At most `limit` admitted hits in any `window` seconds (rejected hits do not count)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._hits: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.window:
            self._hits.popleft()

    def hit(self) -> bool:
        """Count one request if there is room; False means it must be refused."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            if len(self._hits) >= self.limit:
                return False
            self._hits.append(now)
            return True

    def remaining(self) -> int:
        with self._lock:
            self._prune(time.monotonic())
            return max(0, self.limit - len(self._hits))

    def reset_in(self) -> int:
        """Whole seconds until the oldest counted hit leaves the window."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            if not self._hits:
                return math.ceil(self.window)
            return max(1, math.ceil(self._hits[0] + self.window - now))


class StandIn:
    """What every stand-in shares: a lock, the request log, scripted faults, a burst limit.

    Each request goes: scripted fault (if any) -> token check -> burst limit -> the endpoint,
    whose answer then gets the vendor's rate-limit headers. Subclasses give the vendor's bodies.
    """

    def __init__(self, burst: int, window: float) -> None:
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._lock = threading.Lock()
        self._faults = Faults()
        self._burst = RollingWindow(burst, window)
        self._admitted = 0  # requests past the token check and the limit

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  delay: float = 0.0) -> None:
        """Answer the next `times` requests with `status` after `delay` s (below 400: normally).

        429 gets the vendor's rate-limit body and headers; `retry_after` adds Retry-After.
        """
        self._faults.add(status, times, retry_after, delay)

    def _endpoint(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            fault = self._faults.take()
            if fault is not None:
                await fault.wait()
            if fault is not None and fault.status >= 400:
                response = self._refused(fault.status)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
            elif not self._authorized(request):
                response = self._unauthorized()
            elif not self._burst.hit():
                response = self._refused(429)
            else:
                with self._lock:
                    self._admitted += 1
                response = await handler(request)
                response.headers.update(self._rate_headers())
            with self._lock:
                self.requests.append((request.method, request.url.path, response.status_code))
            return response

        return endpoint

    def _authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def _unauthorized(self) -> Response:
        raise NotImplementedError

    def _refused(self, status: int) -> Response:
        """The vendor's answer for a 429 (with its rate-limit headers) or another failure."""
        raise NotImplementedError

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        raise NotImplementedError
