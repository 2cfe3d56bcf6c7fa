"""Idle, slow and oversized connections against a real ``qualify serve`` on 127.0.0.1.

One server (one worker) for the module, started with a soft open-file limit of 256 and
short timeouts: headers 1.5 s, bodies 1.5 s, idle kept-alive connections 1 s. Each test
checks a limit the server did not have before (service/transport.py, bodies.read_body).
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.helpers import API_KEY, LEAD, START, Serve, dumps

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
KEEP_ALIVE = 1
SOFT_FILES = 256
# The soft open-file limit of the server's process, set before qualify starts.
LIMITED = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, "
           f"({SOFT_FILES}, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); ")
PARTIAL = b"POST /v1/score HTTP/1.1\r\nHost: qualify\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4 * SOFT_FILES:
        pytest.skip("the hard open-file limit is too low to test above the soft one")
    s = Serve(tmp_path_factory.mktemp("transport"), "--workers", "1",
              command=("-c", LIMITED + START, "serve"),
              env={"QUALIFY_API_KEYS": API_KEY, "QUALIFY_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
                   "QUALIFY_BODY_TIMEOUT": str(BODY_TIMEOUT),
                   "QUALIFY_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE)})
    try:
        yield s.wait_ready()
    finally:
        s.stop()


def _connect(server: Serve) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _score_request(body: bytes = dumps(LEAD)) -> bytes:
    return (b"POST /v1/score HTTP/1.1\r\nHost: qualify\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers, body (read to its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed without an answer, after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _closed_after(sock: socket.socket, *, trickle: bytes = b"", every: float = 0.3,
                  limit: float = 8.0) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (sending ``trickle`` every ``every`` s
    meanwhile), and what it sent; fails after ``limit`` seconds."""
    began = time.monotonic()
    sock.settimeout(every)
    received = b""
    while time.monotonic() - began < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle:
                try:
                    sock.sendall(trickle)
                except OSError:
                    return time.monotonic() - began, received
            continue
        except ConnectionResetError:
            return time.monotonic() - began, received
        if not chunk:
            return time.monotonic() - began, received
        received += chunk
    raise AssertionError(f"still open after {limit} s (received {received!r})")


def _server_rss(server: Serve) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class TestIdleConnections:
    def test_idle_connections_beyond_the_soft_file_limit_leave_room(
            self, server: Serve) -> None:
        """400 idle connections, more than the soft open-file limit the server started
        with (256): the server raised it to the hard limit, says so, and a normal request
        still gets its verdict (before: it was reset, and nothing was logged)."""
        idle = [_connect(server) for _ in range(400)]
        try:
            with _connect(server) as sock:
                sock.sendall(_score_request())
                status, _, body = _response(sock)
            assert (status, json.loads(body)["lead_id"]) == (200, "L-1001")
        finally:
            for sock in idle:
                sock.close()
        line = next(json.loads(x) for x in server.output().splitlines()
                    if '"connections: at most' in x)
        assert f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}" \
            in line["message"]


class TestHeaderDeadline:
    def test_a_connection_that_sends_nothing_is_closed(self, server: Serve) -> None:
        """A new connection that sends nothing is closed, unanswered, after the header
        timeout (before: held for ever)."""
        with _connect(server) as sock:
            seconds, received = _closed_after(sock)
        assert received == b""
        assert HEADER_TIMEOUT - 0.2 < seconds < HEADER_TIMEOUT + 2

    def test_slowloris_is_answered_408_and_closed(self, server: Serve) -> None:
        """Headers sent a line every 0.3 s never complete: 408 in the service's error
        shape after the header timeout, however steadily bytes come; meanwhile 20 such
        connections hold up no one else."""
        slow = [_connect(server) for _ in range(20)]
        for sock in slow:
            sock.sendall(PARTIAL)
        with _connect(server) as sock:
            sock.sendall(_score_request())
            assert _response(sock)[0] == 200
        seconds, received = _closed_after(slow[0], trickle=b"X-Slow: 1\r\n")
        for sock in slow:
            sock.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body)["error"] == "request_timeout"
        assert HEADER_TIMEOUT - 0.2 < seconds < HEADER_TIMEOUT + 2

    def test_a_later_request_on_a_kept_alive_connection_has_the_deadline_too(
            self, server: Serve) -> None:
        """After a full request, the next one's headers trickle in: 408 and closed, the
        deadline counted from its first byte."""
        with _connect(server) as sock:
            sock.sendall(_score_request())
            assert _response(sock)[0] == 200
            sock.sendall(PARTIAL)
            seconds, received = _closed_after(sock, trickle=b"X-Slow: 1\r\n")
        assert received.startswith(b"HTTP/1.1 408 ")
        assert HEADER_TIMEOUT - 0.2 < seconds < HEADER_TIMEOUT + 2

    def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(
            self, server: Serve) -> None:
        """QUALIFY_KEEP_ALIVE_TIMEOUT reaches uvicorn: an idle connection after a request
        is closed after 1 s (uvicorn's default was 5 s)."""
        with _connect(server) as sock:
            sock.sendall(_score_request())
            assert _response(sock)[0] == 200
            seconds, received = _closed_after(sock)
        assert received == b""
        assert seconds < KEEP_ALIVE + 1


class TestHeaderSize:
    def test_headers_over_the_cap_are_answered_431(self, server: Serve) -> None:
        """20 KB of headers (the cap is 16,384 bytes) get a 431 in the service's error
        shape, and the connection is closed; 12 KB are served. The same for a later request
        on a kept-alive connection."""
        for later in (False, True):
            for size, status in ((12, 200), (20, 431)):
                extra = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size))
                request = _score_request().replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n", 1)
                with _connect(server) as sock:
                    if later:
                        sock.sendall(_score_request())
                        assert _response(sock)[0] == 200
                    sock.sendall(request)
                    got, headers, body = _response(sock)
                assert got == status
            assert (json.loads(body)["error"], headers["connection"]) == (
                "headers_too_large", "close")

    def test_an_endless_header_is_refused_and_memory_stays_flat(
            self, server: Serve) -> None:
        """One header that never ends: the server closes the connection and its memory
        does not grow (before: it took all 16 MiB, and 40 s of it grew a worker by
        200 MB)."""
        before = _server_rss(server)
        chunk = b"a" * 65536
        sent = 0
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: qualify\r\nX-Endless: ")
            with contextlib.suppress(OSError):  # reset: refused
                while sent < 16 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
        assert sent < 16 * 1024 * 1024  # the socket buffers took the rest
        assert _server_rss(server) - before < 4 * 1024 * 1024


class TestBodyDeadline:
    def test_a_body_that_does_not_arrive_in_time_is_answered_408(
            self, server: Serve) -> None:
        """10 bytes of a 100-byte body, then nothing: 408 after the body timeout, in the
        service's error shape, and the connection is closed (before: held for ever)."""
        with _connect(server) as sock:
            sock.sendall(_score_request(b"x" * 100)[:-90])
            began = time.monotonic()
            status, headers, body = _response(sock)
            seconds = time.monotonic() - began
            assert _closed_after(sock)[1] == b""
        error = json.loads(body)
        assert (status, error["error"], headers["connection"]) == (
            408, "request_timeout", "close")
        assert "10 bytes came" in error["message"]
        assert BODY_TIMEOUT - 0.2 < seconds < BODY_TIMEOUT + 2

    def test_a_body_answered_before_it_came_has_the_body_timeout(
            self, server: Serve) -> None:
        """Answered 401 before its body (a wrong key), then the body trickles: the
        connection is closed after the body timeout (before: held for ever, as uvicorn
        restarts no timer for a body nobody reads)."""
        request = _score_request(b"x" * 1000).replace(API_KEY.encode(), b"wrong")
        with _connect(server) as sock:
            sock.sendall(request[:-990])
            assert _response(sock)[0] == 401
            seconds, _ = _closed_after(sock, trickle=b"x")
        assert BODY_TIMEOUT - 0.5 < seconds < BODY_TIMEOUT + 2

    def test_after_a_body_answered_early_an_idle_connection_is_closed(
            self, server: Serve) -> None:
        """The rest of that body comes, then nothing: closed after the keep-alive timeout
        (before: idle for ever, the keep-alive timer stopped by the body's bytes)."""
        request = _score_request(b"x" * 1000).replace(API_KEY.encode(), b"wrong")
        with _connect(server) as sock:
            sock.sendall(request[:-990])
            assert _response(sock)[0] == 401
            time.sleep(0.2)
            sock.sendall(request[-990:])
            seconds, received = _closed_after(sock)
        assert received == b""
        assert seconds < KEEP_ALIVE + 1
