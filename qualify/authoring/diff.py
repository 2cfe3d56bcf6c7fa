"""``qualify rules diff``: what changed between two rule bases, and what it does to leads.

The structural diff compares rules by id: added, removed, changed (condition, points, kind,
label, reason; a condition also in words, as ``rules doc`` says it), next steps that moved in
the order (first match wins, so order is meaning), fields, grades and the score scale. With a
lead list, both rule bases score every lead and the impact is counted: how many leads change
status, grade or next step, and the top movers, each with the reasons (traits that now fire or
no longer do, points that moved, qualifiers whose state changed).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qualify.authoring.outcome import Outcome
from qualify.authoring.render import code
from qualify.engine import Engine
from qualify.errors import QualifyError
from qualify.mapping import Profile
from qualify.rulebook import FieldSpec, Rule, Rulebook
from qualify.words import Words

ChangeKind = Literal["added", "removed", "changed", "moved"]
MAX_ERRORS_KEPT = 5  # lead errors shown per side
SECTION_WORD = {"qualifier": "qualifier", "trait": "trait", "next_step": "next step"}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the rule bases."""

    change: ChangeKind
    section: str  # qualifier, trait, next step, field, grade, score, rulebook
    id: str
    details: tuple[str, ...] = ()
    points: tuple[int | None, int | None] | None = None  # traits: (old, new)
    # a rule's condition in words (for the sales team), before and after; None: no side
    words: tuple[str | None, str | None] | None = None

    def text(self) -> str:
        what = f"{self.change:<8} {self.section} {self.id}".rstrip()
        return f"{what}: {'; '.join(self.details)}" if self.details else what

    def words_text(self) -> str | None:
        """The condition in words: 'X', or 'X -> Y' when it changed."""
        if self.words is None:
            return None
        return " -> ".join(w for w in self.words if w is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "section": self.section, "id": self.id,
                "details": list(self.details), "points": list(self.points)
                if self.points else None,
                "words": None if self.words is None else dict(zip(("old", "new"), self.words,
                                                                  strict=True))}


# ----------------------------------------------------------------------------- structure


def compare(old: Rulebook, new: Rulebook, locale: str | None = None) -> list[Change]:
    """Every difference, in the order of the rule-base sections; conditions also in words
    (``locale``, default the new rule base's), each side with its own labels."""
    loc = locale or new.locale
    said = _Said(Words(old, loc), Words(new, loc))
    out: list[Change] = []
    out += _meta(old, new)
    out += _fields(old.fields, new.fields)
    for section in ("qualifiers", "traits", "next_steps"):
        out += _rules(getattr(old, section), getattr(new, section), said)
    out += _moves(old.next_steps, new.next_steps)
    out += _grades(old, new)
    return out


def _meta(old: Rulebook, new: Rulebook) -> Iterator[Change]:
    details = [f"{k} {a} -> {b}" for k, a, b in (
        ("name", old.name, new.name), ("version", old.version, new.version),
        ("currency", old.currency or "none", new.currency or "none"),
        ("locale", old.locale, new.locale))
        if a != b]
    if details:
        yield Change("changed", "rulebook", "", tuple(details))
    score = [f"{k} {a} -> {b}" for k, a, b in (
        ("base", old.score_base, new.score_base), ("min", old.score_min, new.score_min),
        ("max", old.score_max, new.score_max)) if a != b]
    if score:
        yield Change("changed", "score", "", tuple(score))


def _fields(old: Mapping[str, FieldSpec], new: Mapping[str, FieldSpec]) -> Iterator[Change]:
    for name in [*old, *(n for n in new if n not in old)]:
        a, b = old.get(name), new.get(name)
        if a is None and b is not None:
            yield Change("added", "field", name, (b.type,))
        elif b is None:
            yield Change("removed", "field", name)
        elif a is not None:
            details = [f"{k} {_v(getattr(a, k))} -> {_v(getattr(b, k))}"
                       for k in ("type", "values", "min", "max", "required")
                       if getattr(a, k) != getattr(b, k)]
            details += _words_changed("label", a.label, b.label)
            if a.unit != b.unit:
                details.append(f"unit {_unit(a.unit)} -> {_unit(b.unit)}")
            for value in [*a.value_labels, *(v for v in b.value_labels
                                             if v not in a.value_labels)]:
                code_ = str(value).lower() if isinstance(value, bool) else str(value)
                details += _words_changed(f"value {code_}",
                                          a.value_labels.get(value, {}),
                                          b.value_labels.get(value, {}))
            if details:
                yield Change("changed", "field", name, tuple(details))


def _words_changed(what: str, a: Mapping[str, str], b: Mapping[str, str]) -> Iterator[str]:
    for loc in sorted(set(a) | set(b)):
        if a.get(loc) != b.get(loc):
            yield f"{what} ({loc}) '{a.get(loc, '')}' -> '{b.get(loc, '')}'"


def _unit(unit: str | Mapping[str, str] | None) -> str:
    if unit is None or isinstance(unit, str):
        return unit or "none"
    return "/".join(unit[loc] for loc in sorted(unit))


def _v(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class _Said:
    """Each side's conditions in words, with that side's field and value labels."""

    old: Words
    new: Words

    def words(self, x: Rule | None, y: Rule | None) -> tuple[str | None, str | None]:
        return (None if x is None else self.old.condition(x.expr),
                None if y is None else self.new.condition(y.expr))


def _rules(old: tuple[Rule, ...], new: tuple[Rule, ...], said: _Said) -> Iterator[Change]:
    a = {r.id: r for r in old}
    b = {r.id: r for r in new}
    for rid in [*a, *(r for r in b if r not in a)]:
        x, y = a.get(rid), b.get(rid)
        if x is None and y is not None:
            yield Change("added", SECTION_WORD[y.section], rid, _describe(y),
                         (None, y.points) if y.section == "trait" else None,
                         said.words(None, y))
        elif y is None and x is not None:
            yield Change("removed", SECTION_WORD[x.section], rid, _describe(x),
                         (x.points, None) if x.section == "trait" else None,
                         said.words(x, None))
        elif x is not None and y is not None:
            details = list(_rule_changes(x, y))
            words: tuple[str | None, str | None] | None = said.words(x, y)
            if code(x.expr) == code(y.expr):
                if words is not None and words[0] != words[1]:
                    details.append("same condition, new words (a label, unit or currency)")
                else:
                    words = None
            if details:
                moved = (x.points, y.points) if x.section == "trait" and \
                    x.points != y.points else None
                yield Change("changed", SECTION_WORD[x.section], rid, tuple(details), moved,
                             words)


def _describe(r: Rule) -> tuple[str, ...]:
    head = (f"{r.kind}, {r.points:+d} points",) if r.section == "trait" else ()
    return (*head, f"when '{code(r.expr)}'")


def _rule_changes(x: Rule, y: Rule) -> Iterator[str]:
    if x.kind != y.kind:
        yield f"kind {x.kind} -> {y.kind}"
    if x.points != y.points:
        yield f"points {x.points:+d} -> {y.points:+d}"
    if code(x.expr) != code(y.expr):
        yield f"when '{code(x.expr)}' -> '{code(y.expr)}'"
    if x.factor != y.factor and x.section == "trait":
        yield f"factor {x.factor} -> {y.factor}"
    for what, la, lb in (("label", x.label, y.label), ("reason", x.reason, y.reason),
                         ("evidence words", x.says, y.says)):
        yield from _words_changed(what, la, lb)


def _moves(old: tuple[Rule, ...], new: tuple[Rule, ...]) -> Iterator[Change]:
    """Next steps whose order relative to the others changed (not mere shifts)."""
    both = [r.id for r in old if r.id in {s.id for s in new}]
    after = [r.id for r in new if r.id in set(both)]
    kept: set[str] = set()
    for block in difflib.SequenceMatcher(a=both, b=after, autojunk=False).get_matching_blocks():
        kept.update(both[block.a:block.a + block.size])
    pos_old = {r.id: i + 1 for i, r in enumerate(old)}
    pos_new = {r.id: i + 1 for i, r in enumerate(new)}
    for rid in after:
        if rid not in kept:
            yield Change("moved", "next step", rid,
                         (f"position {pos_old[rid]} -> {pos_new[rid]} (first match wins)",))


def _grades(old: Rulebook, new: Rulebook) -> Iterator[Change]:
    a = {g.id: g for g in old.grades}
    b = {g.id: g for g in new.grades}
    for gid in [*a, *(g for g in b if g not in a)]:
        x, y = a.get(gid), b.get(gid)
        if x is None and y is not None:
            yield Change("added", "grade", gid, (f"min_score {y.min_score}",))
        elif y is None:
            yield Change("removed", "grade", gid)
        elif x is not None and x.min_score != y.min_score:
            yield Change("changed", "grade", gid, (f"min_score {x.min_score} -> {y.min_score}",))


def points_moved(changes: Iterable[Change]) -> list[str]:
    """One phrase per trait whose points moved: "big_order +15 -> +20 (+5)"."""
    out = []
    for c in changes:
        if c.points is None:
            continue
        a, b = c.points
        if a is None and b is not None:
            out.append(f"{c.id} {b:+d} (added)")
        elif b is None and a is not None:
            out.append(f"{c.id} {a:+d} (removed)")
        elif a is not None and b is not None:
            out.append(f"{c.id} {a:+d} -> {b:+d} ({b - a:+d})")
    return out


# ----------------------------------------------------------------------------- impact


@dataclass(frozen=True, slots=True)
class Mover:
    lead_id: str
    line: int
    old: Outcome
    new: Outcome
    reasons: tuple[str, ...]

    @property
    def delta(self) -> int:
        return self.new.score - self.old.score

    def rank(self) -> tuple[int, int, int, int]:
        o, n = self.old, self.new
        return (o.status != n.status, abs(self.delta), o.grade != n.grade, o.step != n.step)

    def summary(self) -> str:
        o, n = self.old, self.new
        parts = [f"score {o.score} -> {n.score} ({self.delta:+d})" if self.delta
                 else f"score {n.score}"]
        for what, a, b in (("grade", o.grade, n.grade), ("status", o.status, n.status),
                           ("next", o.step, n.step)):
            if a != b:
                parts.append(f"{what} {a} -> {b}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"lead_id": self.lead_id, "line": self.line, "old": self.old.to_dict(),
                "new": self.new.to_dict(), "score_delta": self.delta,
                "reasons": list(self.reasons)}


@dataclass(slots=True)
class Impact:
    """How the change moves a list of leads."""

    source: str
    as_of: dt.date
    total: int = 0
    scored: int = 0
    status: Counter[tuple[str, str]] = field(default_factory=Counter)
    grade: Counter[tuple[str, str]] = field(default_factory=Counter)
    step: Counter[tuple[str, str]] = field(default_factory=Counter)
    up: int = 0
    down: int = 0
    delta_sum: int = 0
    errors: dict[str, list[tuple[int, str]]] = field(  # the first few, per side
        default_factory=lambda: {"old": [], "new": []})
    error_count: Counter[str] = field(default_factory=Counter)
    movers: list[Mover] = field(default_factory=list)

    def keep(self, side: str, line: int, message: str) -> None:
        self.error_count[side] += 1
        if len(self.errors[side]) < MAX_ERRORS_KEPT:
            self.errors[side].append((line, message))

    def changed(self, what: Counter[tuple[str, str]]) -> int:
        return sum(n for (a, b), n in what.items() if a != b)

    def to_dict(self) -> dict[str, Any]:
        def moves(c: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
            return [{"from": a, "to": b, "leads": n} for (a, b), n in c.most_common()
                    if a != b]
        return {
            "leads": self.source, "as_of": self.as_of.isoformat(), "total": self.total,
            "scored": self.scored,
            "status_changed": self.changed(self.status), "status_moves": moves(self.status),
            "grade_changed": self.changed(self.grade), "grade_moves": moves(self.grade),
            "next_step_changed": self.changed(self.step), "next_step_moves": moves(self.step),
            "score_up": self.up, "score_down": self.down,
            "score_mean_delta": round(self.delta_sum / self.scored, 2) if self.scored else 0,
            "errors": {k: {"count": self.error_count[k],
                           "first": [{"line": n, "message": m} for n, m in v]}
                       for k, v in self.errors.items()},
            "top_movers": [m.to_dict() for m in self.movers],
        }


def read_leads(path: Path, profile: Profile | None = None) -> Iterator[tuple[int, Any]]:
    """(line or row number, lead) from JSON Lines, JSON (object or array) or CSV, each
    record mapped by ``profile`` if one is given.

    A line that is not valid JSON, or a record the profile cannot map, comes through as a
    ``ValueError`` in place of the lead.
    """
    for number, raw in _records(path):
        if profile is None or isinstance(raw, ValueError):
            yield number, raw
            continue
        try:
            yield number, profile.apply(raw)
        except QualifyError as e:
            yield number, ValueError(str(e))


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    from qualify.leads import BadJSON, read_leads

    csv_file = path.suffix.lower() == ".csv"
    with path.open(encoding="utf-8-sig" if csv_file else "utf-8", newline="") as stream:
        if csv_file:  # a spreadsheet's export may start with a byte-order mark
            reader = csv.DictReader(stream)
            for row in reader:
                yield reader.line_num, row
            return
        for number, raw in read_leads(str(path), stream):
            bad = isinstance(raw, BadJSON)
            yield number, ValueError(f"invalid JSON: {raw.message}") if bad else raw


def impact(old: Engine, new: Engine, leads: Iterable[tuple[int, Any]], *, source: str,
           as_of: dt.date, top: int = 10) -> Impact:
    """Score every lead with both rule bases and count what moved."""
    out = Impact(source, as_of)
    reasons = _Reasons(old.rulebook, new.rulebook, compare(old.rulebook, new.rulebook))
    movers: list[Mover] = []
    for line, raw in leads:
        out.total += 1
        if isinstance(raw, ValueError):
            for side in ("old", "new"):
                out.keep(side, line, str(raw))
            continue
        decided = {}
        for side, engine in (("old", old), ("new", new)):
            try:
                decided[side] = Outcome.of(engine.rulebook, engine.decide(raw, as_of))
            except QualifyError as e:
                out.keep(side, line, str(e))
        if len(decided) < 2:
            continue
        a, b = decided["old"], decided["new"]
        out.scored += 1
        out.status[(a.status, b.status)] += 1
        out.grade[(a.grade, b.grade)] += 1
        out.step[(a.step, b.step)] += 1
        out.up += b.score > a.score
        out.down += b.score < a.score
        out.delta_sum += b.score - a.score
        if (a.status, a.score, a.grade, a.step) != (b.status, b.score, b.grade, b.step):
            lead_id = raw.get("lead_id") if isinstance(raw, Mapping) else None
            movers.append(Mover(str(lead_id or f"line {line}"), line, a, b, ()))
    movers.sort(key=lambda m: (m.rank(), -m.line), reverse=True)
    out.movers = [Mover(m.lead_id, m.line, m.old, m.new, reasons.why(m.old, m.new))
                  for m in movers[:top]]
    return out


class _Reasons:
    """Why a lead moved, in terms of the rules that changed."""

    def __init__(self, old: Rulebook, new: Rulebook, changes: list[Change]) -> None:
        self.old_rb = old
        self.old = {t.id: t for t in old.traits}
        self.new = {t.id: t for t in new.traits}
        self.base = (old.score_base, new.score_base)
        self.grades = {g.id: g.min_score for g in old.grades}, {g.id: g.min_score
                                                                 for g in new.grades}
        self.steps_changed = {c.id: c.change for c in changes if c.section == "next step"}
        self.order = ({r.id: i for i, r in enumerate(old.next_steps)},
                      {r.id: i for i, r in enumerate(new.next_steps)})

    def why(self, a: Outcome, b: Outcome) -> tuple[str, ...]:
        out = []
        for q, state in b.qualifiers.items():
            before = a.qualifiers.get(q)
            if before is not None and before != state:
                out.append(f"qualifier {q} {before} -> {state}")
        fired_a, fired_b = set(a.traits), set(b.traits)
        for t in sorted(fired_b - fired_a):
            pts = self.new[t].points
            out.append(f"+ {t} now fires ({pts:+d})" if t in self.old
                       else f"+ {t} (new trait, {pts:+d})")
        for t in sorted(fired_a - fired_b):
            pts = self.old[t].points
            out.append(f"- {t} no longer fires ({-pts:+d})" if t in self.new
                       else f"- {t} (trait removed, {-pts:+d})")
        for t in sorted(fired_a & fired_b):
            x, y = self.old[t].points, self.new[t].points
            if x != y:
                out.append(f"{t} {x:+d} -> {y:+d} ({y - x:+d})")
        if self.base[0] != self.base[1]:
            out.append(f"score base {self.base[0]} -> {self.base[1]}")
        if a.grade != b.grade and self.old_rb.grade_for(b.score).id != b.grade:
            was = self.grades[0].get(b.grade)
            now = self.grades[1][b.grade]
            out.append(f"grade {b.grade} now from {now}" + (f" (was {was})" if was is not None
                                                           else " (new grade)"))
        if a.step != b.step:
            change = self.steps_changed.get(b.step)
            if change == "added":
                out.append(f"next step {b.step} is new")
            elif change == "changed":
                out.append(f"next step {b.step} changed")
            elif change == "moved" and self.overtook(b.step, a.step):
                out.append(f"next step {b.step} moved above {a.step}")
        return tuple(out)

    def overtook(self, step: str, before: str) -> bool:
        """``step`` came after ``before`` and now comes first."""
        old, new = self.order
        return (before in old and before in new and old[before] < old[step]
                and new[before] > new[step])


# ----------------------------------------------------------------------------- reporting


def text_report(old: Rulebook, new: Rulebook, changes: list[Change],
                result: Impact | None) -> Iterator[str]:
    yield f"{old.source} ({old.name} v{old.version}) -> {new.source} ({new.name} " \
          f"v{new.version})"
    if not changes:
        yield "  no rule changes"
    for c in changes:
        yield f"  {c.text()}"
        said = c.words_text()
        if said is not None:
            yield f"  {'':<8} in words: {said}"
    moved = points_moved(changes)
    if moved:
        yield f"points moved: {', '.join(moved)}"
    if result is None:
        return
    yield ""
    n = result.scored
    yield (f"impact on {result.total} leads, {n} scored ({result.source}, as of "
           f"{result.as_of}):")
    for label, counter in (("status", result.status), ("grade", result.grade),
                           ("next step", result.step)):
        changed = result.changed(counter)
        share = f" ({100 * changed / n:.1f}%)" if n else ""
        moves = ", ".join(f"{a} -> {b} {k}" for (a, b), k in counter.most_common()
                          if a != b)
        yield f"  {label + ' changed':<18} {changed}{share}" + (f": {moves}" if moves else "")
    mean = result.delta_sum / n if n else 0
    yield (f"  {'score':<18} {result.up} up, {result.down} down, "
           f"{n - result.up - result.down} same (mean {mean:+.2f})")
    same = result.errors["old"] == result.errors["new"]
    for side, word in (("old", "either" if same else "OLD"), ("new", "NEW")):
        if side == "new" and same:
            break
        errs = result.errors[side]
        if errs:
            more = result.error_count[side] - len(errs)
            yield (f"  could not score {result.error_count[side]} with {word}"
                   + (f" (the first {len(errs)}):" if more else ":"))
            for line, message in errs:
                yield f"    {result.source}:{line}: {message}"
    if result.movers:
        yield "top movers:"
        for m in result.movers:
            yield f"  {m.lead_id} ({result.source}:{m.line}): {m.summary()}"
            if m.reasons:
                yield f"      {'; '.join(m.reasons)}"


def json_report(old: Rulebook, new: Rulebook, changes: list[Change],
                result: Impact | None) -> dict[str, Any]:
    return {"old": {"file": old.source, "name": old.name, "version": old.version,
                    "sha256": old.sha256},
            "new": {"file": new.source, "name": new.name, "version": new.version,
                    "sha256": new.sha256},
            "changes": [c.to_dict() for c in changes],
            "points_moved": points_moved(changes),
            "impact": result.to_dict() if result else None}
