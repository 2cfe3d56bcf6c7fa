"""Structured logs (one JSON object per line) and the optional decision log (audit).

Log calls pass data as ``extra={"fields": {...}}``; the request id comes from a context
variable set by the middleware. Neither log writes on the event loop: lines are formatted
where they are logged and appended to a buffer that a background thread writes every 50 ms,
in one ``write`` per batch. (A thread woken per record costs a GIL hand-off per request:
measured, that was slower than the scoring. A thread that formatted the records itself held
the GIL for a millisecond or more each time it woke, and requests waited up to the
interpreter's 5 ms switch interval for it: the 99.9th percentile of in-process requests was
5.2-5.9 ms, against 0.9-1.5 ms with the lines formatted by the request.) The decision log
is a file of JSON lines, one per scored lead:
input and verdict (or error); it is opened O_APPEND, so worker processes can share it, and
reopened when logrotate moves it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

import orjson

from service.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("qualify_request_id", default=None)
LOGGER = "qualify"  # the service, and the engine's own logger (qualify.adapter)
ACCESS_LOGGER = "qualify.service.access"
FLUSH_EVERY = 0.05  # seconds between background writes

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
    """Appends one JSON line per decision (input and verdict or error) to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd, self._inode = self._open()
        self._writer = BatchWriter(self._append, "qualify-decision-log")

    def _open(self) -> tuple[int, int]:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return fd, os.fstat(fd).st_ino

    def write(self, *, source: str, lead: Any, verdict_json: bytes | None = None,
              error: dict[str, Any] | None = None) -> None:
        """Queue a line; ``verdict_json`` is the verdict as already serialised."""
        item = (time.time(), REQUEST_ID.get(), source, lead, verdict_json, error)
        try:
            line = self._line(item)
        except Exception as e:  # one bad item must not stop the log, or the request
            line = _unloggable(e)
        self._writer.put(line)

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

    def _reopen_if_moved(self) -> None:
        try:
            moved = os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            moved = True
        if moved:
            os.close(self._fd)
            self._fd, self._inode = self._open()

    def _append(self, text: str) -> None:
        # Whole lines per write: processes sharing the file never interleave mid-line.
        data = text.encode("utf-8", "surrogateescape")
        try:
            self._reopen_if_moved()
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as e:  # a full disk must not stop scoring
            log.error("decision log write failed: %s", e, extra={"fields": {
                "path": str(self.path)}})

    def close(self) -> None:
        self._writer.close()
        os.close(self._fd)
