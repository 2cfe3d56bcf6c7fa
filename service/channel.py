"""Tells sibling worker processes that a reload happened.

A reload request reaches one uvicorn worker. After it swaps its rule base, that worker
writes the new fingerprint to a small file (atomically: write, then rename); every worker
polls the file's mtime and, when the fingerprint differs from its own, reloads too.
``qualify serve --workers N`` sets the file up; any other multi-process runner can set
``QUALIFY_RELOAD_CHANNEL`` to a path shared by its workers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class ReloadChannel:
    """A file holding the fingerprint of the latest successful reload."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def announce(self, fingerprint: str) -> None:
        body = json.dumps({"fingerprint": fingerprint, "pid": os.getpid(), "at": time.time()})
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, self.path)

    def poll(self) -> str | None:
        """The announced fingerprint if the file changed since the last poll, else None."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)  # each announce is a new file (rename)
        if stamp == self._seen:
            return None
        self._seen = stamp
        try:
            value = json.loads(self.path.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
