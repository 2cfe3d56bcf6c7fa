"""The call-first list: the leads a sales team should call first, best score first.

Which leads: the ones scored and not disqualified; when some have no outcome yet (open
leads), only those (the others are decided); when every lead has one (a closed list, as
for a test of the rules), all of them, with their outcome, to show how the ranking would
have ordered them. Order: score, highest first; ties by input line.

Each lead's reason is its fired traits by their labels and points, the strongest first.
The CSV is written by the csv module (quoting as needed); a text value starting with
``= + - @`` (or a tab or a carriage return) gets a leading ``'`` so that a spreadsheet shows
it as text instead of running it as a formula (OWASP's advice on CSV injection).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualify.analyze.collect import Dataset, Scored

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_REASONS = 4  # traits named in a reason


@dataclass(frozen=True, slots=True)
class CallList:
    leads: list[Scored]  # ranked
    open_only: bool  # the list holds only leads without an outcome
    key_names: list[str]


def call_list(data: Dataset) -> CallList:
    """Every lead to call, ranked (see the module docstring)."""
    live = [s for s in data.scored if s.status != "disqualified"]
    open_leads = [s for s in live if s.outcome is None]
    chosen = sorted(open_leads or live, key=lambda s: (-s.score, s.line))
    # a key column that is the lead id itself (Prospect ID mapped as lead_id) is left out
    same = {i for i in range(len(data.key_names))
            if all(s.keys[i] == s.lead_id for s in chosen)} if chosen else set()
    if same:
        chosen = [dataclasses.replace(s, keys=tuple(k for i, k in enumerate(s.keys)
                                                    if i not in same)) for s in chosen]
    names = [k for i, k in enumerate(data.key_names) if i not in same]
    return CallList(chosen, bool(open_leads), names)


def reason(data: Dataset, lead: Scored) -> str:
    """The lead's fired traits by label and points, the strongest first (golden first)."""
    rb = data.rulebook
    traits = {t.id: t for t in rb.traits}
    fired = sorted((traits[t] for t in lead.traits if t in traits),
                   key=lambda t: (t.points < 0, -abs(t.points), t.id))
    words = [f"{t.label[rb.locale]} ({t.points:+d})" for t in fired[:MAX_REASONS]]
    more = len(fired) - MAX_REASONS
    return "; ".join(words) + (f"; {more} more" if more > 0 else "")


def label_of(data: Dataset, kind: str, key: str) -> str:
    """A grade's or a next step's label (the id when the rule base has none)."""
    rb = data.rulebook
    items = rb.grades if kind == "grade" else rb.next_steps
    return next((i.label[rb.locale] for i in items if i.id == key), key)


def outcome_text(value: bool | None) -> str:
    return "" if value is None else ("converted" if value else "not converted")


def columns(calls: CallList, with_outcome: bool) -> list[str]:
    return ["rank", "line", "lead_id", *calls.key_names, "score", "grade", "grade_label",
            "status", "next_step", "next_step_label", "reason",
            *(["outcome"] if with_outcome else [])]


def rows(data: Dataset, calls: CallList, limit: int | None = None) -> list[list[Any]]:
    """The CSV's rows (values as they are; ``safe`` is applied when writing)."""
    with_outcome = not calls.open_only
    out = []
    for rank, s in enumerate(calls.leads[:limit], 1):
        out.append([rank, s.line, s.lead_id or "", *("" if k is None else k for k in s.keys),
                    s.score, s.grade, label_of(data, "grade", s.grade), s.status, s.next_step,
                    label_of(data, "next_step", s.next_step), reason(data, s),
                    *([outcome_text(s.outcome)] if with_outcome else [])])
    return out


def safe(value: Any) -> Any:
    """A text value a spreadsheet would run as a formula, made plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(data: Dataset, calls: CallList, limit: int | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([safe(c) for c in columns(calls, not calls.open_only)])
    for row in rows(data, calls, limit):
        w.writerow([safe(v) for v in row])
    return buf.getvalue()


def save(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (raises InputError, OutputError)."""
    from qualify.batch.writers import AtomicFile

    temp = AtomicFile(path)
    with temp.removed_on_error():
        temp.write(data)
        temp.commit()


def write_csv(path: Path, data: Dataset, calls: CallList) -> None:
    """The whole list, UTF-8 with a BOM (so Excel reads accents and Chinese right)."""
    save(path, ("\ufeff" + csv_text(data, calls)).encode("utf-8"))
