"""Compare a batch with a previous output: which leads changed, and which rules did it.

Leads are matched by ``lead_id`` while both files are read in step. When the previous file
is in the same order (the usual case: the same list rescored after a rule change) only the
leads out of step are held in memory; a shuffled file holds up to all of them.

A lead *changed* when its status, grade or next step differs. Its causes are the rules
whose result differs: a trait that fires now or no longer (``+trait x`` / ``-trait x``), a
qualifier whose state moved (``qualifier need unknown->met``); with none of those, the
rule base's points, grade bands or next-step rules changed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualify.batch.readers import BadRecord, InputError, Reader, open_reader
from qualify.batch.rows import LIST_SEP, Layout, Row

NEEDED = ("lead_id", "status", "grade", "score", "next_step", "traits")
EXAMPLES = 100  # changed leads kept for the report; the changes file lists all
CHANGE_COLUMNS = ("line", "lead_id", "status_before", "status_after", "grade_before",
                  "grade_after", "score_before", "score_after", "next_step_before",
                  "next_step_after", "causes")
ERROR = "error"  # the status and grade of a row that could not be scored


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a lead's row says, as far as comparing goes."""

    key: str
    line: int
    lead_id: str | None
    status: str
    grade: str
    score: int | None
    next_step: str
    traits: frozenset[str]
    qualifiers: tuple[tuple[str, str], ...]
    sha256: str | None = None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def snapshot(values: dict[str, Any], line: int) -> Snapshot:
    """A snapshot from a row as a dict of column -> value (any output format)."""
    lead_id = _text(values.get("lead_id"))
    traits = values.get("traits")
    if isinstance(traits, list):
        fired = frozenset(str(t) for t in traits)
    else:
        fired = frozenset(t for t in (_text(traits) or "").split(LIST_SEP) if t)
    quals = tuple(sorted((k.removeprefix("qualifier_"), _text(v) or ERROR)
                         for k, v in values.items() if k.startswith("qualifier_")))
    return Snapshot(key=lead_id if lead_id is not None else f"#{line}", line=line,
                    lead_id=lead_id, status=_text(values.get("status")) or ERROR,
                    grade=_text(values.get("grade")) or ERROR, score=_int(values.get("score")),
                    next_step=_text(values.get("next_step")) or ERROR, traits=fired,
                    qualifiers=quals, sha256=_text(values.get("rulebook_sha256")))


class Previous:
    """A previous output, read as snapshots. Raises InputError if it is not one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Reader = open_reader(self.path)
        cols = self._reader.columns
        if cols:  # CSV, Parquet: check the header, read only the columns compared
            self._check(cols)
            self._reader.select([c for c in cols if c in (*NEEDED, "line", "rulebook_sha256")
                                 or c.startswith("qualifier_")])
        self._records = self._good()
        self._head = next(self._records, None)
        if not cols and self._head is not None:  # JSONL: check the first object
            self._check(tuple(self._head[1]))

    def _check(self, columns: tuple[str, ...]) -> None:
        missing = [c for c in NEEDED if c not in columns]
        if missing:
            self._reader.close()
            raise InputError(f"{self.path}: not the output of 'qualify batch' (no column "
                             f"{', '.join(repr(m) for m in missing)})")

    def _good(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for line, record in self._reader:
            if not isinstance(record, BadRecord):  # a broken line: nothing to compare with
                yield line, record

    def __iter__(self) -> Iterator[Snapshot]:
        if self._head is not None:
            line, record = self._head
            self._head = None
            yield snapshot(record, _int(record.get("line")) or line)
        for line, record in self._records:
            yield snapshot(record, _int(record.get("line")) or line)

    def close(self) -> None:
        self._reader.close()


@dataclass(slots=True)
class Change:
    before: Snapshot
    after: Snapshot
    causes: list[str]

    def row(self) -> tuple[Any, ...]:
        b, a = self.before, self.after
        return (a.line, a.lead_id, b.status, a.status, b.grade, a.grade, b.score, a.score,
                b.next_step, a.next_step, "; ".join(self.causes))


@dataclass(slots=True)
class Comparison:
    """The counts of a comparison, filled as rows arrive."""

    previous: str
    compared: int = 0
    new: int = 0  # leads only in this run
    dropped: int = 0  # leads only in the previous file
    changed: int = 0  # status, grade or next step differs
    status_changed: int = 0
    grade_changed: int = 0
    step_changed: int = 0
    score_changed: int = 0
    migration: Counter[tuple[str, str]] = field(default_factory=Counter)  # grade from, to
    status_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    step_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    causes: Counter[str] = field(default_factory=Counter)
    examples: list[Change] = field(default_factory=list)
    previous_sha256: set[str] = field(default_factory=set)


def causes(before: Snapshot, after: Snapshot) -> list[str]:
    """The rules whose result differs between two snapshots of one lead."""
    out = [f"+trait {t}" for t in sorted(after.traits - before.traits)]
    out += [f"-trait {t}" for t in sorted(before.traits - after.traits)]
    old = dict(before.qualifiers)
    for q, state in after.qualifiers:
        if q in old and old[q] != state:
            out.append(f"qualifier {q} {old[q]}->{state}")
    if ERROR in (before.status, after.status):
        return out or ["could not be scored" if after.status == ERROR else "scored now"]
    if not out:
        if before.score != after.score:
            out.append("trait points changed")
        elif before.grade != after.grade:
            out.append("grade bands changed")
        if before.next_step != after.next_step:
            out.append("next-step rules changed")
    return out


class Comparer:
    """Matches this run's rows with a previous output's, in step, by lead id."""

    def __init__(self, previous: Previous, layout: Layout, changes: Any = None) -> None:
        self.previous = previous
        self.result = Comparison(str(previous.path))
        self._prev = iter(previous)
        self._names = layout.names
        self._held_prev: dict[str, deque[Snapshot]] = {}
        self._held_now: dict[str, deque[Snapshot]] = {}
        self._changes = changes  # a writer for the changes file, or None

    def add_rows(self, rows: list[Row]) -> None:
        names = self._names
        line_at = names.index("line")
        for row in rows:
            self.add(snapshot(dict(zip(names, row, strict=True)), row[line_at]))

    def add(self, now: Snapshot) -> None:
        before = next(self._prev, None)
        if before is not None and before.key == now.key:
            self._pair(before, now)
            return
        if not self._match(self._held_prev, now, after=True):
            self._held_now.setdefault(now.key, deque()).append(now)
        if before is not None and not self._match(self._held_now, before, after=False):
            self._held_prev.setdefault(before.key, deque()).append(before)

    def _match(self, held: dict[str, deque[Snapshot]], snap: Snapshot, *, after: bool) -> bool:
        queue = held.get(snap.key)
        if not queue:
            return False
        other = queue.popleft()
        if not queue:
            del held[snap.key]
        if after:
            self._pair(other, snap)
        else:
            self._pair(snap, other)
        return True

    def _pair(self, before: Snapshot, after: Snapshot) -> None:
        r = self.result
        r.compared += 1
        if before.sha256:
            r.previous_sha256.add(before.sha256)
        r.migration[before.grade, after.grade] += 1
        status = before.status != after.status
        grade = before.grade != after.grade
        step = before.next_step != after.next_step
        r.score_changed += before.score != after.score
        if not (status or grade or step):
            return
        r.changed += 1
        r.status_changed += status
        r.grade_changed += grade
        r.step_changed += step
        if status:
            r.status_moves[before.status, after.status] += 1
        if step:
            r.step_moves[before.next_step, after.next_step] += 1
        change = Change(before, after, causes(before, after))
        r.causes.update(change.causes)
        if len(r.examples) < EXAMPLES:
            r.examples.append(change)
        if self._changes is not None:
            self._changes.write([change.row()])

    def finish(self) -> Comparison:
        """Pair what is left; count leads only in one of the two files."""
        for before in self._prev:
            if not self._match(self._held_now, before, after=False):
                self.result.dropped += 1
        self.result.dropped += sum(len(q) for q in self._held_prev.values())
        self.result.new += sum(len(q) for q in self._held_now.values())
        self._held_prev.clear()
        self._held_now.clear()
        self.previous.close()
        return self.result


def render(c: Comparison, sha256: str | None = None, top: int = 5) -> str:
    """The comparison as plain text, for the printed summary (``sha256``: this run's rule
    base, to say whether it changed)."""
    def pct(n: int) -> str:
        return f"{100 * n / c.compared:.1f} %" if c.compared else "-"

    before = sorted(c.previous_sha256)
    if sha256 and before and before != [sha256]:
        olds = ", ".join(b[:12] for b in before[:3])
        base = f"the rule base changed (sha256 {olds} -> {sha256[:12]})"
    elif sha256 and before:
        base = "the same rule base"
    else:
        base = "rule base of the previous run unknown"
    out = [f"compared with {c.previous}: {c.compared:,} leads in both, {c.new:,} new, "
           f"{c.dropped:,} dropped", f"  {base}",
           f"  changed: {c.changed:,} ({pct(c.changed)}): status {c.status_changed:,}, "
           f"grade {c.grade_changed:,}, next step {c.step_changed:,}; the score moved for "
           f"{c.score_changed:,}"]
    if c.causes:
        out.append("  rules that caused it:")
        w = max(len(k) for k, _ in c.causes.most_common(top))
        out += [f"    {k:<{w}}  {n:>10,} leads" for k, n in c.causes.most_common(top)]
    moves = [(f"{a} -> {b}", n) for (a, b), n in c.migration.most_common() if a != b][:top]
    if moves:
        out.append("  grade moves: " + ", ".join(f"{m} {n:,}" for m, n in moves))
    return "\n".join(out)
