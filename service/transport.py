"""The connections under the app: uvicorn's limits, the open-file limit, and the protocol.

uvicorn closes idle kept-alive connections (``timeout_keep_alive``) and answers 503 beyond
``limit_concurrency``; ``qualify serve`` sets both (``uvicorn_options``). Its httptools
protocol (uvicorn[standard]'s, kept for its speed) neither times nor caps a request's
headers: a connection that sent nothing, or a header byte now and then, was held for ever,
and one endless header grew a worker by 200 MB in 40 s. ``HttpProtocol`` adds both:

- the request line and headers must arrive within ``QUALIFY_HEADER_TIMEOUT`` seconds of
  connecting, or of the first byte of a later request on a kept-alive connection: else a
  408 (or, when nothing came, no answer) and the connection is closed;
- they may take ``QUALIFY_MAX_HEADER_BYTES``: more is answered 431 and the connection closed;
- a body answered before it all came (a 401 before the body is read) has
  ``QUALIFY_BODY_TIMEOUT`` to finish, then the connection is closed: uvicorn stops its
  keep-alive timer at every byte and restarts it only after a response.

They read the same ``QUALIFY_*`` settings as the app. With ``uvicorn service.main:create_app
--factory``, add ``--http service.transport:HttpProtocol`` (and uvicorn's
``--limit-concurrency`` and ``--timeout-keep-alive``). The body's deadline is the app's
(``bodies.read_body``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import resource
import time
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.settings import Settings

log = logging.getLogger("qualify.service")

FILES_RESERVED = 128  # files a worker opens besides connections (measured: about 30)


def raise_file_limit() -> int:
    """Lift this process's soft limit on open files to its hard limit; the limit in force.

    Each connection is a file: at the usual soft limit of 1,024, 1,100 idle connections left
    none for the next client, which was reset without a line in the log."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a hard limit above the kernel's: keep the soft one
            return soft
        return target
    return soft


def connection_limit(settings: Settings, files: int) -> int:
    """``max_connections``, lowered so that the connections leave files for the rest."""
    return max(1, min(settings.max_connections, files - FILES_RESERVED))


def uvicorn_options(settings: Settings, files: int) -> dict[str, Any]:
    """The connection settings of ``uvicorn.run`` for ``qualify serve``."""
    return {"http": HttpProtocol, "timeout_keep_alive": settings.keep_alive_timeout,
            "limit_concurrency": connection_limit(settings, files)}


@functools.cache
def _limits() -> tuple[float, int, float]:
    """(header timeout, max header bytes, body timeout) of this process's settings."""
    settings = Settings()
    return settings.header_timeout, settings.max_header_bytes, settings.body_timeout


class _Tally:
    """A warning at most once a minute, with how many times it happened since the last."""

    def __init__(self, message: str) -> None:
        self.message = message  # %d: the count
        self.count = 0
        self.quiet_until = 0.0

    def __call__(self, **fields: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.quiet_until:
            log.warning(self.message, self.count, extra={"fields": fields})
            self.count = 0
            self.quiet_until = now + 60.0


_late = _Tally("request headers not complete in time (QUALIFY_HEADER_TIMEOUT): a slow or "
               "idle client, or a slowloris attack; %d connection(s) closed since the last "
               "such line")
_large = _Tally("request headers over QUALIFY_MAX_HEADER_BYTES: %d request(s) answered 431 "
                "since the last such line")
_unread = _Tally("request bodies still coming after the answer, not complete in time "
                 "(QUALIFY_BODY_TIMEOUT): %d connection(s) closed since the last such line")
_full = _Tally("a connection opened at the limit (QUALIFY_MAX_CONNECTIONS): requests are "
               "answered 503 until some close; %d such connection(s) since the last such line")


TOO_LARGE = ("the request line and headers are over the limit of %d bytes: send fewer or "
             "shorter headers")


async def _too_large(scope: Scope, receive: ASGIReceiveCallable,
                     send: ASGISendCallable) -> None:
    """The 431 of headers that came whole: the connection is closed after it."""
    body = _error("headers_too_large", TOO_LARGE % _limits()[1])
    await send({"type": "http.response.start", "status": 431, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error(error: str, message: str) -> bytes:
    """The service's error shape (service.errors)."""
    return json.dumps({"error": error, "message": message}, separators=(",", ":")).encode()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size cap for request headers."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout, self.max_header_bytes, self.body_timeout = _limits()
        self.reading_headers = False  # of a request: from connecting or its first byte
        self.header_bytes = 0  # in chunks wholly read while reading them: a chunk less at most
        self.uncounted = 0  # bytes of the chunk in which a later request began: a bound
        self.begun = False  # a byte of the request came
        self.chunk = 0  # bytes in the last data received
        self.headers_due = 0.0  # loop time
        self.header_deadline: asyncio.TimerHandle | None = None
        self.body_deadline: asyncio.TimerHandle | None = None  # for a body answered early

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            _full(connections=len(self.connections), limit=limit)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_body_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.chunk = len(data)
        if self.reading_headers:
            self.header_bytes += self.chunk
        super().data_received(data)
        if not self.reading_headers or self.transport.is_closing():
            return
        if self.header_bytes > self.max_header_bytes:  # the headers go on and on
            _large(client=self.client and self.client[0], bytes=self.header_bytes)
            self._answer(431, "headers_too_large", TOO_LARGE % self.max_header_bytes)
        elif self.header_deadline is None:  # a later request's headers are not all here
            self.header_deadline = self.loop.call_at(self.headers_due, self._headers_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_headers:  # a later request on a kept-alive connection: its
            self.reading_headers = True  # deadline is set only if its headers are split
            self.header_bytes = 0
            self.uncounted = self.chunk
            self.headers_due = self.loop.time() + self.header_timeout
        self.begun = True

    def on_headers_complete(self) -> None:
        self.reading_headers = self.begun = False
        self._cancel_deadline()
        if self.header_bytes + self.uncounted > self.max_header_bytes and (  # else fewer
                len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 16
                > self.max_header_bytes):  # too many, all come: 431 by uvicorn's cycle
            _large(client=self.client and self.client[0])
            app, self.app = self.app, _too_large
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.body_deadline is not None:  # the body answered early is all here: the
            self._cancel_body_deadline()  # connection is idle, and uvicorn's timer was
            if not self.transport.is_closing():  # stopped by the body's bytes
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            # Answered before its body came (a 401, a 405): the rest has the body's time.
            self.body_deadline = self.loop.call_later(self.body_timeout, self._body_late)

    def _await_headers(self) -> None:
        self.reading_headers = True
        self.header_bytes = self.uncounted = 0
        self.headers_due = self.loop.time() + self.header_timeout
        self.header_deadline = self.loop.call_at(self.headers_due, self._headers_late)

    def _cancel_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _cancel_body_deadline(self) -> None:
        if self.body_deadline is not None:
            self.body_deadline.cancel()
            self.body_deadline = None

    def _body_late(self) -> None:
        self.body_deadline = None
        if not self.transport.is_closing():
            _unread(client=self.client and self.client[0], timeout=self.body_timeout)
            self.transport.close()  # answered already: nothing more to say

    def _headers_late(self) -> None:
        self.header_deadline = None
        if self.transport.is_closing():
            return
        if self._responding():  # to a request before (pipelined): more time, after it
            self.header_deadline = self.loop.call_later(self.header_timeout,
                                                        self._headers_late)
            return
        _late(client=self.client and self.client[0], timeout=self.header_timeout)
        if self.begun:
            self._answer(408, "request_timeout", "the request line and headers did not "
                         f"arrive within {self.header_timeout:g} s: send the whole request "
                         "at once")
        else:  # nothing to answer: an idle connection
            self.transport.close()

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _answer(self, status: int, error: str, message: str) -> None:
        """A JSON error in the service's shape, then close (the rest is not read); only
        close if a response to a request before it is under way (pipelined)."""
        self._cancel_deadline()
        if self._responding():
            self.transport.close()
            return
        body = _error(error, message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n"
                    b"connection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()
