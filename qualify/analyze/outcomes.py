"""The outcome column: each row's value read as converted (True), not (False) or unknown.

Without ``--positive``: 1/0, true/false, yes/no, y/n (any case; 1.0 and 0.0 too). With
``--positive VALUE`` (repeatable): those values are positive and every other non-blank value
is negative (a CRM's stage column: ``--positive Won``). A blank value, and without
``--positive`` a value that is none of those words, is unknown: the row is counted and left
out of the analysis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from qualify.errors import QualifyError

TRUE = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE = frozenset({"0", "0.0", "false", "no", "n", "f"})


class AnalyzeError(QualifyError):
    """The analysis cannot run (no such column, one class only). One line, for users."""


class OutcomeReader:
    """Reads outcome values, counting the ones it could not read."""

    def __init__(self, positive: Iterable[str] = ()) -> None:
        self.positive = frozenset(p.strip().casefold() for p in positive)
        self.blank = 0
        self.unknown: Counter[str] = Counter()  # values that are not an outcome

    def read(self, value: Any) -> bool | None:
        """True (converted), False, or None (blank or unreadable: counted)."""
        if isinstance(value, bool):
            return value
        if value is None:
            self.blank += 1
            return None
        text = str(value)
        folded = text.strip().casefold()
        if not folded:
            self.blank += 1
            return None
        if self.positive:
            return folded in self.positive
        if folded in TRUE:
            return True
        if folded in FALSE:
            return False
        self.unknown[text.strip()] += 1
        return None

    @property
    def left_out(self) -> int:
        return self.blank + sum(self.unknown.values())
