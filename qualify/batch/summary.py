"""What a batch says in numbers: counts that merge, so each partition can keep its own.

``Summary.add`` takes one verdict, ``add_error`` one failed row; ``merge`` adds another
partition's counts. ``render`` prints it for people: counts by status and grade, the most
fired traits, the most common weakest factor and next step, the missing fields that cost the
most points, and the errors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import methodcaller
from typing import Any

from qualify.batch.rows import LIST_SEP
from qualify.rulebook import Rulebook
from qualify.verdict import Verdict

FIRST_ERRORS = 10  # failed rows kept for the printout; the errors file has all of them
TOP = 5  # items shown per ranking
ROW = "(whole row)"  # error_fields key for a row that failed as a whole, not one field

# scores by tens: 0, 10, ... 90 (90 holds 90-100); a rule base keeps scores within 0-100
_BUCKET = [min(score // 10 * 10, 90) for score in range(101)]
_SPLIT = methodcaller("split", LIST_SEP)  # the traits column: ids joined by ";"


@dataclass(slots=True)
class Summary:
    """Counts over the rows of a batch (or of one partition of it)."""

    leads: int = 0  # rows scored or failed
    errors: int = 0
    rows_in: int = 0  # records read, counted by the reader's side (leads must equal it)
    status: Counter[str] = field(default_factory=Counter)
    grade: Counter[str] = field(default_factory=Counter)
    grade_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    scores: Counter[int] = field(default_factory=Counter)  # by tens: 0, 10, ... 90 (90-100)
    traits: Counter[str] = field(default_factory=Counter)
    weakest: Counter[str] = field(default_factory=Counter)
    next_step: Counter[str] = field(default_factory=Counter)
    missing_points: Counter[str] = field(default_factory=Counter)  # golden points at stake
    missing_leads: Counter[str] = field(default_factory=Counter)  # leads it left a rule open
    missing_status: Counter[str] = field(default_factory=Counter)  # leads it kept unqualified
    error_fields: Counter[str] = field(default_factory=Counter)
    unread: Counter[str] = field(default_factory=Counter)  # values read as unknown, by field
    first_errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.leads - self.errors

    def add(self, v: Verdict) -> None:
        """Count one verdict."""
        self.leads += 1
        status, grade = v.status, v.grade
        self.status[status] += 1
        self.grade[grade] += 1
        self.grade_status[grade, status] += 1
        self.scores[_BUCKET[v.score]] += 1
        self.traits.update(t["id"] for t in v.traits)
        if v.weakest:
            self.weakest[v.weakest["factor"]] += 1
        self.next_step[v.next_step["id"]] += 1
        self.add_missing(v)

    def add_rows(self, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Count the scored rows of a partition (output rows, ``names`` their columns) as
        ``add`` counts verdicts, but for the fields left open (``add_missing`` per verdict).
        Each count is one ``Counter.update`` over a column, a loop in C: 0.5 µs a row,
        where ``add`` took 2.6 in a worker."""
        cols = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {}
        statuses = cols.get("status", ())
        if None in statuses:  # failed rows: counted by add_error
            keep = [s is not None for s in statuses]
            cols = {k: tuple(compress(c, keep)) for k, c in cols.items()}
            statuses = cols["status"]
        if not statuses:
            return
        grades = cols["grade"]
        self.leads += len(statuses)
        self.status.update(statuses)
        self.grade.update(grades)
        self.grade_status.update(zip(grades, statuses, strict=True))
        self.scores.update(map(_BUCKET.__getitem__, cols["score"]))
        self.traits.update(chain.from_iterable(map(_SPLIT, filter(None, cols["traits"]))))
        self.weakest.update(filter(None, cols["weakest"]))
        self.next_step.update(cols["next_step"])

    def add_missing(self, v: Verdict) -> None:
        """Count the fields whose absence left a rule of this verdict undecided."""
        if not v.unknown:
            return
        open_fields, blocking = missing_of(v, self.missing_points)
        self.missing_leads.update(open_fields)
        self.missing_status.update(blocking)

    def add_error(self, line: int, field_name: str | None, message: str) -> None:
        self.leads += 1
        self.errors += 1
        self.error_fields[field_name or ROW] += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append((line, message))

    def merge(self, other: Summary) -> None:
        """Add ``other``'s counts (a later partition) to these."""
        self.leads += other.leads
        self.errors += other.errors
        self.rows_in += other.rows_in
        for name in ("status", "grade", "grade_status", "scores", "traits", "weakest",
                     "next_step", "missing_points", "missing_leads", "missing_status",
                     "error_fields", "unread"):
            getattr(self, name).update(getattr(other, name))
        room = FIRST_ERRORS - len(self.first_errors)
        self.first_errors.extend(other.first_errors[:max(room, 0)])


def missing_of(v: Verdict, points: Counter[str]) -> tuple[set[str], set[str]]:
    """The fields whose absence left a rule of ``v`` undecided, and those of them that kept
    it from qualifying; the golden points each left at stake are added to ``points``."""
    open_fields: set[str] = set()
    blocking: set[str] = set()
    for u in v.unknown:
        missing = u["missing"]
        open_fields.update(missing)
        if u["section"] == "qualifier":
            blocking.update(missing)
        elif u["points"] > 0:
            for m in missing:
                points[m] += u["points"]
    return open_fields, blocking


def row_stats(v: Verdict | None, error_field: str | None = None,
              unread: Sequence[str] = ()) -> str:
    """What a row adds to the counts its output columns do not show, as JSON (for a
    cluster, which sums them with its own aggregations): ``f`` the field of an error row
    (``ROW`` for the whole row), ``o``/``b``/``p`` the missing fields as ``add_missing``
    counts them, ``u`` the values read as unknown."""
    if v is None:
        return json.dumps({"f": error_field or ROW}, ensure_ascii=False)
    points: Counter[str] = Counter()
    open_fields, blocking = missing_of(v, points) if v.unknown else (set(), set())
    return json.dumps({"o": sorted(open_fields), "b": sorted(blocking), "p": points,
                       "u": list(unread)}, ensure_ascii=False)


def plural(n: int, word: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def rows_line(s: Summary) -> str:
    """``rows: 3,000 in = 2,999 scored + 1 error row``: every record read is a row out."""
    if s.rows_in == s.leads:
        return f"rows: {s.rows_in:,} in = {s.scored:,} scored + {plural(s.errors, 'error row')}"
    return (f"rows: {s.rows_in:,} in, but {s.scored:,} scored + "
            f"{plural(s.errors, 'error row')}; this is a bug in qualify, please report it")


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:5.1f} %" if total else "    - "


def _table(title: str, items: list[tuple[str, str, int]], total: int) -> list[str]:
    """A ranking: id, label, count and share of ``total``."""
    if not items:
        return []
    w_id = max(len(i) for i, _, _ in items)
    w_label = max(len(label) for _, label, _ in items)
    lines = [title]
    for ident, label, n in items:
        text = f"{ident:<{w_id}}  {label:<{w_label}}" if w_label else f"{ident:<{w_id}}"
        lines.append(f"  {text}  {n:>10,}  {_pct(n, total)}")
    return lines


def render(s: Summary, rb: Rulebook, locale: str | None = None, *,
           header: list[str] | None = None, footer: list[str] | None = None) -> str:
    """The summary as plain text, for a terminal or a log."""
    loc = locale or rb.locale
    total = s.leads
    out: list[str] = list(header or [])
    status_labels = {"qualified": "qualified", "needs_discovery": "needs discovery",
                     "disqualified": "disqualified"}  # the status words of explanations
    order = ["qualified", "needs_discovery", "disqualified"]
    rows = [(status_labels[k], "", s.status[k]) for k in order]
    if s.errors:
        rows.append(("could not be scored", "", s.errors))
    out += ["", *_table("status", rows, total)]
    grades = [(g.id, g.label[loc], s.grade[g.id]) for g in rb.grades]
    out += ["", *_table("grade", grades, total)]
    traits = {t.id: t for t in rb.traits}
    top = [(t, f"{traits[t].label[loc]} ({traits[t].points:+d})" if t in traits else t, n)
           for t, n in s.traits.most_common(TOP)]
    out += ["", *_table("most fired traits", top, s.scored)]
    weakest = [(f, _label(rb.factors.get(f), loc, f), n) for f, n in s.weakest.most_common(TOP)]
    out += ["", *_table("weakest factor", weakest, s.scored)]
    steps = {r.id: r for r in rb.next_steps}
    nxt = [(k, steps[k].label[loc] if k in steps else k, n)
           for k, n in s.next_step.most_common(TOP)]
    out += ["", *_table("next step", nxt, s.scored)]
    costly = s.missing_points.most_common(TOP)
    if costly:
        out += ["", "missing fields that cost the most points (golden-trait points at stake)"]
        w = max(len(f) for f, _ in costly)
        for f, pts in costly:
            held = s.missing_status[f]
            extra = f"; kept {held:,} leads from qualifying" if held else ""
            out.append(f"  {f:<{w}}  {pts:>12,} points over {s.missing_leads[f]:,} leads{extra}")
    blocking = [(f, n) for f, n in s.missing_status.most_common(TOP)
                if f not in dict(costly)]
    if blocking:
        out += ["", "missing fields that kept leads from qualifying"]
        w = max(len(f) for f, _ in blocking)
        out += [f"  {f:<{w}}  {n:>10,} leads" for f, n in blocking]
    if s.unread:
        values = ", ".join(f"{f} {n:,}" for f, n in s.unread.most_common(TOP))
        out += ["", f"values the rule base cannot read, scored as unknown (unmapped: "
                f"unknown): {values}"]
    if s.errors:
        by_field = ", ".join(f"{f} {n:,}" for f, n in s.error_fields.most_common(TOP))
        failed = plural(s.errors, "row")
        out += ["", f"errors: {failed} could not be scored (by field: {by_field})"]
        out += [f"  line {line}: {msg}" for line, msg in s.first_errors[:TOP]]
    out += list(footer or [])
    return "\n".join(out)


def _label(label: Any, loc: str, fallback: str) -> str:
    if isinstance(label, dict):
        return str(label.get(loc) or fallback)
    return fallback
