"""The output row: the input's key columns beside the verdict, flat, the same in every format.

    line, <keys...>, lead_id, status, score, grade, qualifier_<id>..., traits, next_step,
    weakest, explanation, rulebook_sha256, error

``traits`` lists the fired trait ids joined by ";" (the list format leads.py reads back);
``explanation`` is the verdict's lines joined by newlines. A row that failed has its error
in ``error`` and no verdict. JSONL output adds the whole verdict as ``verdict``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qualify.verdict import Verdict

Row = tuple[Any, ...]
LIST_SEP = ";"
VERDICT_COLUMNS = ("lead_id", "status", "score", "grade")
TAIL_COLUMNS = ("traits", "next_step", "weakest", "explanation", "rulebook_sha256", "error")
INT_COLUMNS = frozenset({"line", "score"})


@dataclass(frozen=True, slots=True)
class Layout:
    """Which columns an output row has, for one rule base and one set of key columns."""

    keys: tuple[str, ...]  # input columns copied to the output
    qualifiers: tuple[str, ...]  # qualifier ids of the rule base
    sha256: str

    @property
    def key_names(self) -> tuple[str, ...]:
        """The key columns' output names; one that clashes with ours gets ``input_``."""
        ours = {"line", *VERDICT_COLUMNS, *TAIL_COLUMNS, *self.qualifier_names}
        return tuple(f"input_{k}" if k in ours else k for k in self.keys)

    @property
    def qualifier_names(self) -> tuple[str, ...]:
        return tuple(f"qualifier_{q}" for q in self.qualifiers)

    @property
    def names(self) -> tuple[str, ...]:
        return ("line", *self.key_names, *VERDICT_COLUMNS, *self.qualifier_names,
                *TAIL_COLUMNS)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def row(self, line: int, keys: Sequence[Any], v: Verdict) -> Row:
        """The row for a verdict."""
        return (line, *keys, v.lead_id, v.status, v.score, v.grade,
                *(v.qualifiers[q]["state"] for q in self.qualifiers),
                LIST_SEP.join(t["id"] for t in v.traits), v.next_step["id"],
                v.weakest["factor"] if v.weakest else None, "\n".join(v.explanation),
                self.sha256, None)

    def error_row(self, line: int, keys: Sequence[Any], lead_id: str | None,
                  error: str) -> Row:
        """The row for a lead that could not be scored: no verdict, the reason in ``error``."""
        blank = (None,) * (3 + len(self.qualifiers) + 4)
        return (line, *keys, lead_id, *blank, self.sha256, error)


def key_value(value: Any) -> str | None:
    """A key column's value as text (keys are text in every output format)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
