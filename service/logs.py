"""Structured logs (one JSON object per line) and the optional decision log (audit).

Log calls pass data as ``extra={"fields": {...}}``; the request id comes from a context
variable set by the middleware. Logs are not written on the event loop: lines are formatted
where they are logged and appended to a buffer that a background thread writes every 50 ms,
in one ``write`` per batch. (A thread woken per record costs a GIL hand-off per request:
measured, that was slower than the scoring. A thread that formatted the records itself held
the GIL for a millisecond or more each time it woke, and requests waited up to the
interpreter's 5 ms switch interval for it: the 99.9th percentile of in-process requests was
5.2-5.9 ms, against 0.9-1.5 ms with the lines formatted by the request.)

The decision log is a file of JSON lines, one per decision (input and verdict, or error). It
is an audit record, so it is written by the request, before the answer is sent: one
``write`` per verdict or per batch, into the page cache (no fsync), so a worker killed the
next instant loses none (a 50 ms buffer lost up to 50 ms of answered verdicts). Worker
processes share the file (O_APPEND; reopened when logrotate has moved it, which is checked
once a second, so lines of that second go to the moved file) under an exclusive
``flock``, held for that write, which makes a write all or nothing: a write cut short (full
disk, file size limit, I/O error) is truncated back to its last whole line, and what it lost
is counted (``lost``: the ``qualify_decision_log_failures_total`` metric) and logged once
per run of failures. A torn tail that could not be truncated (or that a killed writer left)
is ended with a newline by the next writer, so it stays a line of its own that readers
reject as invalid JSON, and no record is glued onto it.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

import orjson

from service.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("qualify_request_id", default=None)
LOGGER = "qualify"  # the service, and the engine's own logger (qualify.adapter)
ACCESS_LOGGER = "qualify.service.access"
FLUSH_EVERY = 0.05  # seconds between background writes
REOPEN_CHECK_EVERY = 1.0  # seconds between checks that logrotate moved the decision log

log = logging.getLogger("qualify.service")

_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _encode(value: Any) -> str:
    """Compact JSON, unknown types as text. orjson (with json's encoder a logged request
    cost 48k instructions more, callgrind); json for what orjson refuses (integers beyond
    64 bits, nesting deeper than 254)."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return _JSON(value)


def _timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-01-01T12:00:00.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        f".{int(seconds % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _timestamp(record.created),
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage()}
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return _encode(out)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record.created)} {record.levelname:<7} {record.name}: " \
               f"{record.getMessage()}"
        fields = dict(getattr(record, "fields", None) or {})
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            fields["request_id"] = request_id
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def _unloggable(e: Exception) -> str:
    return _encode({"ts": _timestamp(time.time()), "level": "error",
                    "logger": "qualify.service",
                    "message": f"unloggable item: {type(e).__name__}"})


class BatchWriter:
    """Collects lines from any thread; a daemon thread writes them in batches."""

    def __init__(self, write: Callable[[str], None], name: str) -> None:
        self._write = write
        self._lines: collections.deque[str] = collections.deque()  # append is thread-safe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        self._lines.append(line)

    def _drain(self) -> None:
        lines = []
        while self._lines:
            lines.append(self._lines.popleft())
        if lines:  # a sink that is gone (closed stream, full disk): drop, keep serving
            with contextlib.suppress(OSError, ValueError):
                self._write("\n".join(lines) + "\n")

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self._drain()
        self._drain()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _BufferedHandler(logging.Handler):
    """Formats each record where it is logged (the request id is the caller's) and hands
    the line to a BatchWriter."""

    def __init__(self, writer: BatchWriter, fmt: logging.Formatter) -> None:
        super().__init__()
        self.writer = writer
        self.setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as e:  # one bad record must not stop the log, or the request
            line = _unloggable(e)
        self.writer.put(line)


class LogSetup:
    """Routes the ``qualify`` loggers to ``stream`` (stderr) off the event loop; ``close``
    flushes and undoes it."""

    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        out = stream or sys.stderr
        fmt = formatter(settings.log_format)
        self.json = isinstance(fmt, JsonFormatter)

        def write(text: str) -> None:
            out.write(text)
            out.flush()

        self.writer = BatchWriter(write, "qualify-log")
        self.handler = _BufferedHandler(self.writer, fmt)
        self.logger = logging.getLogger(LOGGER)
        self._saved = (self.logger.level, self.logger.propagate)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(settings.log_level.upper())
        self.logger.propagate = False

    def access(self, level: int, message: str, request_id: str,
               fields: dict[str, Any]) -> bool:
        """Write an access line straight to the writer, as the JSON formatter would write
        the access logger's record, without the record: that machinery cost about a tenth of
        a scored request (callgrind). False (nothing written) in the text format."""
        if not self.json:
            return False
        self.writer.put(_encode({"ts": _timestamp(time.time()),
                                 "level": logging.getLevelName(level).lower(),
                                 "logger": ACCESS_LOGGER, "message": message,
                                 "request_id": request_id, **fields}))
        return True

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._saved[0])
        self.logger.propagate = self._saved[1]
        self.writer.close()


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's own loggers in the same format (passed to ``uvicorn.run(log_config=...)``)."""
    cls = "service.logs.JsonFormatter" if settings.log_format == "json" \
        else "service.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"qualify": {"()": cls}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "qualify",
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": settings.log_level.upper(),
                        "propagate": False},
            "uvicorn.error": {"level": settings.log_level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "qualify.cli": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


class DecisionLog:
    """Appends one JSON line per decision (input and verdict or error) to a file, before the
    answer is sent; ``lost(n)`` is told of decisions it could not write."""

    def __init__(self, path: Path, lost: Callable[[int], None] | None = None) -> None:
        self.path = path
        self._lost = lost
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # this process's threads (a flock is per open file)
        self._fd, self._inode = self._open()
        self._checked = -REOPEN_CHECK_EVERY  # when the path was last checked (monotonic)
        self._end = -1  # where our last write ended: the file ends whole there (-1: unknown)
        self._closed = False
        self._failing = 0  # decisions lost since the last write that worked

    def _open(self) -> tuple[int, int]:
        # Read and write: a writer reads the last byte to end a torn line.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd, os.fstat(fd).st_ino

    def write(self, *, source: str, lead: Any, verdict_json: bytes | None = None,
              error: dict[str, Any] | None = None) -> bool:
        """Write one decision's line; ``verdict_json`` is the verdict as already serialised.
        False if it could not be written (counted and logged)."""
        return self.append([self.line(source=source, lead=lead, verdict_json=verdict_json,
                                      error=error)]) == 1

    def line(self, *, source: str, lead: Any, verdict_json: bytes | None = None,
             error: dict[str, Any] | None = None) -> str | None:
        """One decision's line, for ``append``; None if it cannot be encoded."""
        item = (time.time(), REQUEST_ID.get(), source, lead, verdict_json, error)
        try:
            return self._line(item)
        except Exception:  # counted and logged as lost by append: never stops the request
            return None

    @staticmethod
    def _line(item: tuple[Any, ...]) -> str:
        at, request_id, source, lead, verdict_json, error = item
        head = _encode({"ts": _timestamp(at), "request_id": request_id, "source": source})
        try:
            lead_json = _encode(lead)
        except (ValueError, TypeError, RecursionError):
            lead_json = _encode(repr(lead)[:10_000])
        text = head[:-1] + ',"input":' + lead_json
        if verdict_json is not None:
            text += ',"verdict":' + verdict_json.decode()
        if error is not None:
            text += ',"error":' + _encode(error)
        return text + "}"

    def append(self, lines: Sequence[str | None]) -> int:
        """Write ``lines`` (a request's decisions) in one ``write``; how many are in the file.
        None is a decision that could not be encoded: lost."""
        texts = [line for line in lines if line is not None]
        data = ("\n".join(texts) + "\n").encode("utf-8", "surrogateescape") if texts else b""
        with self._lock:
            written, problem = 0, None
            if data:
                try:
                    self._reopen_if_moved()
                    written, problem = self._locked_write(data)
                except OSError as e:  # a full disk must not stop scoring
                    problem = e
            self._account(len(lines) - written, problem)
        return written

    def _reopen_if_moved(self) -> None:
        """Reopen the path if logrotate moved the file: checked once a second (a ``stat`` per
        line cost 5-30 µs here); lines written meanwhile are in the moved file."""
        if self._closed:
            raise OSError(errno.EBADF, "the decision log is closed")
        now = time.monotonic()
        if self._fd >= 0 and now - self._checked < REOPEN_CHECK_EVERY:
            return
        try:
            moved = self._fd < 0 or os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            moved = True
        if moved:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1  # if the open fails, the next write tries again
            self._fd, self._inode = self._open()
            self._end = -1
        self._checked = now

    def _locked_write(self, data: bytes) -> tuple[int, OSError | None]:
        """Append ``data`` (whole lines) under the file's lock: the lines written, and why
        not all. A write cut short is truncated back to its last whole line: every writer
        appends under this lock, so nothing follows it (checked all the same)."""
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            prefix = 0
            if end and end != self._end and os.pread(fd, 1, end - 1) != b"\n":
                data = b"\n" + data  # end the torn line before it, not glue onto it
                prefix = 1
            self._end = -1
            done = 0
            try:
                while done < len(data):
                    n = os.write(fd, data[done:])  # short only when the file cannot grow
                    if n <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += n
            except OSError as e:
                whole = data.rfind(b"\n", 0, done) + 1
                if whole < done:
                    with contextlib.suppress(OSError):  # else the next writer ends the line
                        if os.fstat(fd).st_size == end + done:
                            os.ftruncate(fd, end + whole)
                return max(0, data.count(b"\n", 0, whole) - prefix), e
            self._end = end + done
            return data.count(b"\n") - prefix, None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _account(self, lost: int, problem: Exception | None) -> None:
        """Count lost decisions; log once when a run of failures starts and when it ends."""
        if lost:
            if self._lost is not None:
                self._lost(lost)
            if not self._failing:
                log.error("decision log: decisions not written (counted in "
                          "qualify_decision_log_failures_total until writes work again): "
                          "%s", problem or "a decision could not be encoded", extra={"fields": {
                              "path": str(self.path)}})
            self._failing += lost
        elif self._failing:
            log.warning("decision log: writing again", extra={"fields": {
                "path": str(self.path), "lost": self._failing}})
            self._failing = 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
