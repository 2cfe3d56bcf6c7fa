"""What a batch run is asked to do (``Job``) and what it did (``Outcome``): plain data that
the pipeline fills in and the summary and the report read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qualify.batch.compare import Comparison
from qualify.batch.summary import Summary
from qualify.rulebook import Rulebook

if TYPE_CHECKING:
    from qualify.batch.rows import Layout, Row


class Watcher(Protocol):
    """Something that reads a run's rows as they are scored and says what it found, in the
    summary and the report: ``batch --outcome`` (``qualify/analyze/watch.py``). Batch runs
    it without knowing what it is; what it needs of the input is one column, carried."""

    column: str  # an input column each output row carries (a key column)

    def check(self, columns: tuple[str, ...], where: str) -> None:
        """Before any row: raises BatchError when the input lacks what it needs."""

    def start(self, rulebook: Rulebook, as_of: dt.date, layout: Layout, source: str) -> None:
        """The rows' layout, once they are known."""

    def add(self, row: Row, values: tuple[Any, ...] | None) -> None:
        """One output row, in input order, and its lead's field values in rule-base order
        (None for an error row). In the batch's parent process: keep it lean."""

    def finish(self) -> None:
        """Every row was added."""

    def lines(self) -> list[str]:
        """What to add to the printed summary."""

    def section(self) -> str:
        """What to add to the HTML report (HTML, every value escaped)."""


@dataclass(frozen=True, slots=True)
class Job:
    """What to run: the command line's options."""

    input: Path
    output: Path
    rules: Path | None = None
    mapping: Path | None = None
    workers: int | None = None  # None: the cores
    compare: Path | None = None
    report: Path | None = None
    as_of: dt.date | None = None
    locale: str | None = None
    keys: tuple[str, ...] = ()  # input columns to copy (default: the mapping's, or lead_id's)
    watcher: Watcher | None = None  # reads the rows as they are scored (batch --outcome)
    progress: bool | None = None  # None: when stderr is a terminal


@dataclass(slots=True)
class Outcome:
    """What a run did."""

    job: Job
    rulebook: Rulebook
    as_of: dt.date
    workers: int
    summary: Summary = field(default_factory=Summary)
    comparison: Comparison | None = None
    seconds: float = 0.0
    errors_path: Path | None = None
    changes_path: Path | None = None
    unread_columns: tuple[str, ...] = ()  # input columns the mapping does not read

    @property
    def failed(self) -> bool:
        """Some rows could not be scored (or, a bug, some record read gave no row)."""
        return self.summary.errors > 0 or self.summary.rows_in != self.summary.leads


def sibling(output: Path, kind: str) -> Path:
    """``scored.parquet`` -> ``scored.errors.csv`` (kind: errors, changes)."""
    return output.with_name(f"{output.stem}.{kind}.csv")
