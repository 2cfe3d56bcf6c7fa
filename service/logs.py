"""Structured logs (one JSON object per line) and the optional decision log (audit).

Log calls pass data as ``extra={"fields": {...}}``; the request id comes from a context
variable set by the middleware. Records cross a queue to a background thread, so a slow log
sink never blocks the event loop. The decision log is a file of JSON lines, one per scored
lead: input and verdict (or error), written by its own thread with one ``write`` per line
(O_APPEND: several worker processes can share the file), reopened when logrotate moves it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from service.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("qualify_request_id", default=None)
LOGGER = "qualify"  # the service, and the engine's own logger (qualify.adapter)

log = logging.getLogger("qualify.service")


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode  # built once: cheaper


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
        return _ENCODE(out)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for a terminal."""

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


class _QueueHandler(logging.handlers.QueueHandler):
    """Captures what only the emitting thread knows (request id, traceback) before queuing."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # No copy: this handler is the record's only consumer (the logger does not propagate).
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if not getattr(record, "request_id", None):
            record.request_id = REQUEST_ID.get()
        return record


class LogSetup:
    """Routes the ``qualify`` loggers to stderr through a queue; ``close`` undoes it."""

    def __init__(self, settings: Settings) -> None:
        self.logger = logging.getLogger(LOGGER)
        self._saved = (self.logger.level, self.logger.propagate)
        sink = logging.StreamHandler(sys.stderr)
        sink.setFormatter(formatter(settings.log_format))
        q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.handler = _QueueHandler(q)
        self.listener = logging.handlers.QueueListener(q, sink)
        self.listener.start()
        self.logger.addHandler(self.handler)
        self.logger.setLevel(settings.log_level.upper())
        self.logger.propagate = False

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._saved[0])
        self.logger.propagate = self._saved[1]
        self.listener.stop()


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
    """Appends one JSON line per decision to a file, from a background thread."""

    _STOP = object()

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd, self._inode = self._open()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="qualify-decision-log",
                                        daemon=True)
        self._thread.start()

    def _open(self) -> tuple[int, int]:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return fd, os.fstat(fd).st_ino

    def write(self, *, source: str, lead: Any, verdict_json: bytes | str | None = None,
              error: dict[str, Any] | None = None) -> None:
        """Queue a line; ``verdict_json`` is the verdict as already serialised."""
        self._queue.put((_timestamp(time.time()), REQUEST_ID.get(),
                         source, lead, verdict_json, error))

    def _line(self, item: tuple[Any, ...]) -> bytes:
        ts, request_id, source, lead, verdict_json, error = item
        head = {"ts": ts, "request_id": request_id, "source": source}
        try:
            lead_json = json.dumps(lead, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            lead_json = json.dumps(repr(lead)[:10_000])
        text = json.dumps(head, ensure_ascii=False)[:-1] + ',"input":' + lead_json
        if verdict_json is not None:
            text += ',"verdict":' + (verdict_json.decode() if isinstance(verdict_json, bytes)
                                     else verdict_json)
        if error is not None:
            text += ',"error":' + json.dumps(error, ensure_ascii=False)
        return (text + "}\n").encode("utf-8", "surrogateescape")

    def _reopen_if_moved(self) -> None:
        try:
            moved = os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            moved = True
        if moved:
            os.close(self._fd)
            self._fd, self._inode = self._open()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            try:
                self._reopen_if_moved()
                data = self._line(item)
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as e:  # a full disk must not stop scoring
                log.error("decision log write failed: %s", e)

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join(timeout=10)
        os.close(self._fd)
