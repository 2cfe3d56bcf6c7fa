"""Tells sibling worker processes which rule base a reload activated, word for word.

A reload request reaches one uvicorn worker. After it swaps its rule base in, that worker
writes the *activation* to a small file (atomically: write, then rename): the fingerprint
and the exact text of the rule base, its profiles and its tests. Every worker polls the
file and, when the fingerprint differs from its own, builds from that text, not from the
files on disk, which may have changed since (or be half written). A worker that starts
later (uvicorn restarts one that died) also builds from the last activation, so it serves
what its siblings serve even while the file on disk is broken.

``qualify serve`` makes a fresh channel for each run and writes the rule base it checked
into it before any worker starts. Another multi-process runner can set
``QUALIFY_RELOAD_CHANNEL`` to a path its workers share: a fresh one for each run, or the
workers start from the previous run's last activation.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class ReloadChannel:
    """A file holding the latest successful activation (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def announce(self, activation: dict[str, Any]) -> None:
        """Publish ``activation`` (it must hold a ``fingerprint``) to every sibling."""
        body = json.dumps({**activation, "pid": os.getpid(), "at": time.time()},
                          ensure_ascii=False)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, self.path)

    def poll(self) -> dict[str, Any] | None:
        """The activation if the file changed since the last poll, else None."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)  # each announce is a new file (rename)
        if stamp == self._seen:
            return None
        self._seen = stamp
        return self.latest()

    def latest(self) -> dict[str, Any] | None:
        """The last activation, whatever was seen before; None if there is none (yet)."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict) or not isinstance(value.get("fingerprint"), str):
            return None
        return value
