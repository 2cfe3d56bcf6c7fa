"""Worker processes end with the command that started them, even after a ``kill -9``.

A worker waits on its task queue, whose pipe the workers themselves hold open, so it never
sees the command die: after a SIGKILL it waited forever. On Linux ``die_with_parent`` (run
first in each worker) asks the kernel for SIGKILL when the process that forked the worker
ends (``prctl(PR_SET_PDEATHSIG)``):

- forked from the command: the command is that parent;
- from a forkserver: the forkserver is, and it ends when no process holds its "alive" pipe
  (the command and every worker it started get a copy). The worker lets go of its copy,
  so the forkserver ends with the command, and the workers with the forkserver.

If the parent ended before ``prctl`` took effect no signal will come: the worker then sees
another parent (init, or a subreaper) and exits. Elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_forked_by: int | None = None  # set in the forking process, just before it forks


def _note_forker() -> None:
    global _forked_by  # noqa: PLW0603 - what a child inherits of the process that forked it
    _forked_by = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(before=_note_forker)


def die_with_parent() -> None:
    """SIGKILL this process when its parent ends (see the module docstring). Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if _forked_by is not None and os.getppid() != _forked_by:
        os._exit(1)  # the parent ended before prctl: no signal will come
    _let_go_of_forkserver()


def _let_go_of_forkserver() -> None:
    """Close this process's copy of the forkserver's "alive" pipe (multiprocessing keeps it
    in a private attribute; a test kills a command whose workers come from a forkserver)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
