"""Ctrl-C and SIGTERM around the steps of a batch run that create, rename or remove files.

A run creates hidden ``.partial`` files and must remove or rename every one of them. An
interrupt that lands between creating a file and recording it (inside a writer's
constructor, or between its return and the list that ``abort`` walks) would orphan it, so
those steps run with interrupts ``held``: a signal that arrives meanwhile is delivered, to
the handler it would have reached, as soon as the step is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: clean up, leave no output."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the block. Python only lets
    the main thread set handlers; elsewhere this does nothing."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM wait until the block ends, then reach their own handlers. Yields
    the signals caught so far (the caller may look, e.g. to word its message)."""
    if not _main_thread():  # signal handlers run in the main thread only
        yield []
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    old = {s: signal.signal(s, hold) for s in _SIGNALS}
    try:
        yield caught
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # now, through the restored handler
