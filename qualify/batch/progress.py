"""A progress bar on stderr (rich) for long runs; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

Measure = Callable[[], tuple[int, int]]  # (done, total) of the input, in bytes or rows


class Progress:
    """``update`` after each partition written; the bar shows how far into the input the
    written rows reach (the reader runs ahead by the partitions in flight)."""

    def __init__(self, measure: Measure, label: str, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self._measure = measure
        self._bar: Any = None
        self._task: Any = None
        self._label = label
        self._stream = stream

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            total = self._measure()[1]
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(),
                            TaskProgressColumn(), TextColumn("{task.fields[leads]:,} leads"),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(),
                            console=Console(file=self._stream), transient=True,
                            redirect_stdout=False, redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task(self._label, total=total or None, completed=0,
                                            leads=0, rate="")
        return self

    def update(self, leads: int, elapsed: float, done: int) -> None:
        """``done``: how far into the input the rows written so far reach."""
        if self._bar is None:
            return
        total = self._measure()[1]
        rate = f"{leads / elapsed:,.0f}/s" if elapsed > 0 else ""
        self._bar.update(self._task, completed=done, total=total or None, leads=leads,
                         rate=rate)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
