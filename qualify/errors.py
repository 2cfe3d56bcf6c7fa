"""Every error qualify raises, rooted in one class so callers can catch them all.

    QualifyError
    ├── RulebaseError      the rule base cannot be loaded; carries every Problem found
    ├── LeadError          a lead is not valid for the rule base's schema; names the field
    ├── EngineError        the rule engine failed; never shows the engine's own text to users
    │   └── EngineClosedError  the engine was closed (e.g. replaced by a reload)
    ├── PatternError       a pattern RE2 cannot compile (patterns.py; also a ValueError)
    ├── InputError         batch: an input file cannot be read at all (batch/readers.py)
    ├── OutputError        batch: an output file cannot be written (batch/writers.py)
    ├── BatchError         batch: a run cannot start (batch/pipeline.py)
    ├── WorkerError        batch: a worker process died (batch/runner.py)
    ├── AnalyzeError       analyze: no outcome to relate verdicts to (analyze/outcomes.py)
    ├── SparkError         batch --spark: the cluster cannot run it (spark.py)
    └── GiveUp             rules check: the solver ran over its budget (caught inside)

What a command's exit status means for each: ``exits.py``.

A Problem is data (file, line, column, code, message, hint), printed as
``file:line:col: code: message (hint)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rule base, with where it is and what to do."""

    code: str
    message: str
    file: str = "<rules>"
    line: int = 0
    column: int = 0
    hint: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.code}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QualifyError(Exception):
    """The root of every error qualify raises on purpose."""


class RulebaseError(QualifyError):
    """A rule base failed to load. ``problems`` lists every error found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid rule base"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole: a worker's error reaches us
        return type(self), (self.problems,)


class LeadError(QualifyError):
    """A lead cannot be scored. ``field`` names the offending field (None: the lead itself)."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.field, self.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.reason}


class EngineError(QualifyError):
    """The rule engine failed on a lead. The message is ours; the engine's text stays in logs."""


class EngineClosedError(EngineError):
    """The engine was closed and can no longer score."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``word``, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest valid choice, or None when nothing is close."""
    close = closest(word, choices)
    return f"did you mean '{close}'?" if close else None
