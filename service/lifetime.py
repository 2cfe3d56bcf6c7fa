"""The processes ``qualify serve`` starts (its uvicorn workers, the outbox) end with it.

serve puts its pid in ``QUALIFY_SERVE_PID``. A process it started asks Linux for SIGTERM
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), even by SIGKILL: a ``kill -9`` of serve
left its workers holding the port, and its outbox running. Elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

SERVE_PID = "QUALIFY_SERVE_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a process ``qualify serve`` started: SIGTERM when serve dies. The signal follows
    the thread that started the process (uvicorn starts workers from its main thread)."""
    parent = os.environ.get(SERVE_PID, "")
    if not parent.isdigit() or int(parent) == os.getpid():
        return  # not started by serve, or serve itself (one worker runs in its process)
    with contextlib.suppress(OSError, AttributeError):  # not Linux
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # it died before we asked
        raise SystemExit(f"qualify serve (pid {parent}), which started this process, is "
                         "gone: stopping")
