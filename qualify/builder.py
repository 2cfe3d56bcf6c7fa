"""Building the verdict of a decision: evidence, unknowns, weakest factor, next step and
the explanation lines, in en or zh (the words are ``words.py``'s).

Explained parts are kept per rule, locale and the values the rule reads (one generated
function gives every rule's key), read-only: verdicts share them, as they share the rule
base's labels.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from qualify.decide import MEMO, Decision, State
from qualify.explain import Explainer, compile_explainer
from qualify.kept import Bounded
from qualify.rulebook import Rule, Rulebook
from qualify.verdict import (
    Evidence,
    NextStep,
    QualifierVerdict,
    ReadOnlyDict,
    ReadOnlyList,
    RulebookRef,
    TraitHit,
    Unknown,
    Verdict,
    Weakest,
    build_verdict,
    freeze,
)
from qualify.words import Words

EXPLAIN_MEMO = 512  # explained parts kept per rule and locale (about 1 KB each)
LOCALES = ("en", "zh")


class Part(NamedTuple):
    """A rule explained for one state and set of values."""

    state: State
    evidence: list[Evidence]
    missing: list[str]
    line: str
    entry: Any  # its entry in the verdict's traits or unknown (TraitHit, Unknown) or None
    q_verdict: QualifierVerdict | None  # a qualifier's entry in the verdict's qualifiers
    text: str  # the words its line ends with (evidence, or "no data on" the missing fields)
    missing_text: str  # the missing fields' words alone


class Choice(NamedTuple):
    """The weakest factor as the states and points choose it."""

    factor: str
    label: str
    points: int
    reason: str  # whole, or its start when ``q_index`` is a qualifier's
    q_index: int | None  # the qualifier whose part's words end the reason


class Step(NamedTuple):
    """A next step as its reason needs it."""

    explainers: dict[str, Explainer]  # per locale
    reads_qualifiers: tuple[str, ...]
    reads_status: bool
    fields: frozenset[str]  # the lead fields its condition reads


class Builder:
    """Verdicts for decisions of one rule base (safe to share between threads)."""

    def __init__(self, rulebook: Rulebook, rules_1: tuple[Rule, ...], *,
                 memo: bool = True) -> None:
        self.rulebook = rulebook
        self._n_qualifiers = len(rulebook.qualifiers)
        self._q_index = {q.id: i for i, q in enumerate(rulebook.qualifiers)}
        # each factor in order: (order, factor, its qualifier's index, or -1 for none)
        self._factor_plan = tuple((order, f, self._q_index.get(f, -1))
                                  for order, f in enumerate(rulebook.factors))
        self._ref: RulebookRef = freeze({"name": rulebook.name, "version": rulebook.version,
                                         "sha256": rulebook.sha256})  # in every verdict
        self._words = {loc: Words(rulebook, loc) for loc in LOCALES}
        keep = MEMO if memo else 0
        self._weakest_memo: Bounded[Choice] = Bounded(keep)  # by (locale, choice)
        self._views = {loc: tuple(_View.of(r, self._words[loc], EXPLAIN_MEMO if memo else 0)
                                  for r in rules_1)
                       for loc in LOCALES}
        self._part_keys = part_keys(rules_1)
        # each reason as (literal, placeholder or None) pieces; the rule base allows no
        # format spec or conversion in them
        self._reasons = {(s.id, loc): tuple((text, name) for text, name, _, _
                                            in string.Formatter().parse(s.reason[loc]))
                         for s in rulebook.next_steps for loc in LOCALES}
        self._reason_names = {key: frozenset(n for _, n in pieces if n)
                              for key, pieces in self._reasons.items()}
        self._steps: dict[str, Step] = {}
        for s in rulebook.next_steps:
            names = [r.name for r in s.expr.refs() if r.kind == "verdict"]
            self._steps[s.id] = Step(
                {loc: compile_explainer(s.expr, self._words[loc], keep and EXPLAIN_MEMO)
                 for loc in LOCALES},
                tuple(dict.fromkeys(n.split(".", 1)[1] for n in names
                                    if n.startswith("qualifier."))),
                "status" in names,
                frozenset(r.name for r in s.expr.refs() if r.kind != "verdict"))

    def verdict(self, d: Decision, as_of: dt.date, loc: str) -> Verdict:
        """Build the verdict for a decision: evidence, unknowns, weakest factor, next step."""
        rb = self.rulebook
        w = self._words[loc]
        fact, lead = d.fact, d.lead
        lines: list[str] = []
        qualifiers: dict[str, QualifierVerdict] = {}
        q_parts: list[Part] = []
        unknown: list[Unknown] = []
        views = self._views[loc]
        n = self._n_qualifiers
        keys = self._part_keys(lead, as_of, d.states)
        for v, state, key in zip(views[:n], d.states, keys, strict=False):
            part = v.memo.get(key)
            if part is None:
                part = v.remember(key, _qualifier_part(v, state, fact, lead, w))
            q_parts.append(part)
            if part.entry is not None:
                unknown.append(part.entry)
            lines.append(part.line)
            qualifiers[v.id] = part.q_verdict  # type: ignore[assignment]
        traits: list[TraitHit] = []
        factor_points: dict[str, int] = {}
        for v, state, key in zip(views[n:], d.states[n:], keys[n:], strict=True):
            if state is False:
                continue
            part = v.memo.get(key)
            if part is None:
                part = v.remember(key, _trait_part(v, state, fact, lead, w))
            lines.append(part.line)
            if state:
                traits.append(part.entry)
                if v.factor:
                    factor_points[v.factor] = factor_points.get(v.factor, 0) + v.points
            else:
                unknown.append(part.entry)
        grade = rb.grade_for(d.score)
        head = w.w["head"].format(lead["lead_id"], w.status[d.status], d.score, grade.id,
                                  grade.label[loc])
        weakest = self._weakest(d.states[:n], factor_points, loc, q_parts)
        step = self._next_step(d, loc, q_parts)
        if weakest:
            lines.append(w.w["weakest"] + weakest["reason"])
        lines.append(f"{w.w['next']}{step['label']}{w.dash}{step['reason']}")
        return build_verdict({
            "lead_id": lead["lead_id"], "rulebook": self._ref, "as_of": as_of, "locale": loc,
            "qualifiers": qualifiers, "status": d.status, "score": d.score, "grade": d.grade,
            "traits": traits, "unknown": unknown, "weakest": weakest, "next_step": step,
            "explanation": [head, *lines]})

    def _weakest(self, q_states: tuple[bool | None, ...], factor_points: dict[str, int],
                 loc: str, q_parts: list[Part]) -> Weakest | None:
        """The shortest stave: an unmet qualifier, else the factor whose traits cost most
        points, else an unknown qualifier, else the factor contributing least (ties: fewer
        points, then rule-base order). Its words are kept per choice; an unmet or unknown
        qualifier's reason ends with the words of its part."""
        best: tuple[int, int, int] | None = None
        get = factor_points.get
        for order, factor, q in self._factor_plan:
            pts = get(factor, 0)
            st = True if q < 0 else q_states[q]
            rank = 0 if st is False else 1 if pts < 0 else 2 if st is None else 3
            if best is None or (rank, pts, order) < best:
                best = (rank, pts, order)
        if best is None:
            return None
        key = (loc, *best)
        try:
            choice = self._weakest_memo[key]
        except KeyError:
            choice = self._weakest_memo.keep(key, self._words_of_weakest(*best, loc))
        factor, label, points, reason, q_index = choice
        if q_index is not None:
            reason += q_parts[q_index].text
        return {"factor": factor, "label": label, "reason": reason, "points": points}

    def _words_of_weakest(self, rank: int, pts: int, order: int, loc: str) -> Choice:
        """The weakest factor's label and reason (for an unmet or unknown qualifier, the
        reason's start: its part's words end it)."""
        rb = self.rulebook
        w = self._words[loc]
        factor = self._factor_plan[order][1]
        label = rb.factors[factor][loc]
        head = f"{label}{w.colon}"
        if rank == 0:
            return Choice(factor, label, pts, f"{head}{w.state['unmet']}{w.dash}",
                          self._q_index[factor])
        if rank == 2:
            return Choice(factor, label, pts, f"{head}{w.state['unknown']}{w.dash}",
                          self._q_index[factor])
        return Choice(factor, label, pts, label + w.w["because"].format(
            w.w["costs" if rank == 1 else "fewest"].format(pts)), None)

    def _next_step(self, d: Decision, loc: str, q_parts: list[Part]) -> NextStep:
        """The step's label and its reason, filled from the lead's facts (only the names
        its reason uses are worked out; a qualifier's evidence and missing fields are the
        words of its part)."""
        rb = self.rulebook
        w = self._words[loc]
        step = d.step
        explainers, read_q, reads_status, fields = self._steps[step.id]
        used = self._reason_names[step.id, loc]
        index = self._q_index
        if reads_status:
            read_q = tuple(dict.fromkeys(
                (*read_q, *(q.id for q, p in zip(rb.qualifiers, q_parts, strict=True)
                            if p.state != "met"))))
        values: dict[str, str] = {}
        if "evidence" in used:
            own = explainers[loc](d.stage2_fact, d.lead, True)
            texts = [w.evidence([e for e in own if e["field"] in fields])]
            texts += [p.text for p in (q_parts[index[q]] for q in read_q)
                      if p.state != "unknown"]
            values["evidence"] = w.w["sep"].join(t for t in texts if t) or "-"
        if "missing" in used:
            focus = read_q or tuple(q.id for q, p in zip(rb.qualifiers, q_parts, strict=True)
                                    if p.state == "unknown")
            if len(focus) == 1:
                p = q_parts[index[focus[0]]]
                text = p.missing_text if p.state == "unknown" else ""
            else:
                text = w.fields(list(dict.fromkeys(m for q in focus
                                                   for m in q_parts[index[q]].missing)))
            values["missing"] = text or "-"
        for name in ("unmet", "unknown"):
            if name in used:
                labels = [r.label[loc] for r, p in zip(rb.qualifiers, q_parts, strict=True)
                          if p.state == name]
                values[name] = w.sep.join(labels) or "-"
        if "grade" in used:
            values["grade"] = d.grade
        if "score" in used:
            values["score"] = str(d.score)
        if "status" in used:
            values["status"] = w.status[d.status]
        out: list[str] = []
        for literal, field in self._reasons[step.id, loc]:
            out.append(literal)
            if field is not None:
                out.append(values[field] if field in values
                           else w.value(field, d.lead.get(field)))
        return {"id": step.id, "label": step.label[loc], "reason": "".join(out)}


@dataclass(frozen=True, slots=True)
class _View:
    """A qualifier or trait as one locale shows it, with its line prefixes made once."""

    id: str
    kind: str
    points: int
    factor: str | None
    label: str
    sources: tuple[str, ...]
    explainer: Explainer
    says: Callable[[list[Evidence], Mapping[str, Any], Mapping[str, Any]], str]
    met_line: str  # qualifier met, or trait fired
    unmet_line: str
    unknown_line: str
    memo: Bounded[Part]  # explained parts by what they depend on, see ``part_keys``

    def remember(self, key: Hashable, part: Part) -> Part:
        """Keep ``part`` for the next lead alike, read-only: verdicts share it from now on."""
        if not self.memo.size:
            return part
        return self.memo.keep(key, _frozen(part))

    @classmethod
    def of(cls, rule: Rule, w: Words, memo_size: int) -> _View:
        label, c, dash = rule.label[w.locale], w.colon, w.dash
        if rule.section == "qualifier":
            met = f"✓ {label}{c}{w.state['met']}{dash}"
            unmet = f"✗ {label}{c}{w.state['unmet']}{dash}"
            unknown = f"? {label}{c}{w.state['unknown']}{dash}"
        else:
            points = w.w["points"].format(rule.points)
            met = f"{rule.points:+d} {label}{dash}"
            unmet = ""
            unknown = f"? {label}{points}{c}"
        return cls(rule.id, rule.kind, rule.points, rule.factor, label, rule.sources,
                   compile_explainer(rule.expr, w, memo_size), w.template(rule), met, unmet,
                   unknown,
                   Bounded(memo_size))


_NO_VALUE = object()  # a source the lead lacks, in a part key


def part_keys(rules: tuple[Rule, ...]
              ) -> Callable[[Mapping[str, Any], dt.date, tuple[bool | None, ...]],
                            tuple[Hashable, ...]]:
    """What each rule's explanation depends on: its state, the lead values it reads, and
    the day if it reads days_since. Values equal in Python show alike: the lead reader
    makes whole floats integers (25000.0 is 25000, -0.0 is 0). One generated function
    gives every rule's key, each lead value read once: 13.1 µs a lead with a function per
    rule, 2.3 µs so."""
    sources = sorted({src for r in rules for src in r.sources})
    names = {src: f"v{i}" for i, src in enumerate(sources)}
    lines = ["def keys(lead, as_of, states):", "    get = lead.get"]
    for src, var in names.items():
        lines.append(f"    {var} = get({src!r}, _NO)")
    lines.append("    return (")
    for i, r in enumerate(rules):
        dated = any(ref.func == "days_since" for ref in r.expr.refs())
        values = "".join(f"{names[src]}, " for src in r.sources)
        lines.append(f"        (states[{i}], {'as_of' if dated else 'None'}, {values}),")
    lines.append("    )")
    env: dict[str, Any] = {"_NO": _NO_VALUE}
    exec("\n".join(lines), env)  # the source is built above from the rule base alone
    keys: Callable[[Mapping[str, Any], dt.date, tuple[bool | None, ...]],
                   tuple[Hashable, ...]] = env["keys"]
    return keys


def _frozen(part: Part) -> Part:
    """``part`` with its evidence, missing fields and verdict entries read-only. Its shape is
    known, so no generic walk: a kept part costs a few container copies (a walk cost 10 µs)."""
    state, evidence, missing, line, entry, q_verdict, text, missing_text = part
    ev = ReadOnlyList([ReadOnlyDict(e) if type(e["value"]) is not list
                       else ReadOnlyDict(e, value=ReadOnlyList(e["value"])) for e in evidence])
    gone = ReadOnlyList(missing)

    def fixed(d: Any) -> Any:
        if d is None:
            return None
        out = ReadOnlyDict(d)
        if "evidence" in d:
            dict.__setitem__(out, "evidence", ev)
        if "missing" in d:
            dict.__setitem__(out, "missing", gone)
        return out

    return Part(state, ev, gone, line, fixed(entry), fixed(q_verdict), text, missing_text)


def _qualifier_part(v: _View, state: bool | None, fact: Mapping[str, Any],
                    lead: Mapping[str, Any], w: Words) -> Part:
    if state is None:
        missing = [s for s in v.sources if s not in lead]
        entry: Unknown = {"id": v.id, "section": "qualifier", "label": v.label,
                          "missing": missing, "points": 0, "could_change_status": True}
        text = w.missing(missing)
        return Part("unknown", [], missing, v.unknown_line + text, entry,
                {"state": "unknown", "label": v.label, "evidence": [], "missing": missing},
                text, w.fields(missing))
    evidence = v.explainer(fact, lead, state)
    text = v.says(evidence, fact, lead)
    st: State = "met" if state else "unmet"
    return Part(st, evidence, [], (v.met_line if state else v.unmet_line) + text, None,
            {"state": st, "label": v.label, "evidence": evidence, "missing": []}, text, "")


def _trait_part(v: _View, state: bool | None, fact: Mapping[str, Any],
                lead: Mapping[str, Any], w: Words) -> Part:
    if state:
        evidence = v.explainer(fact, lead, state)
        hit: TraitHit = {"id": v.id, "kind": v.kind,  # type: ignore[typeddict-item]
                         "points": v.points, "label": v.label, "evidence": evidence}
        return Part("met", evidence, [], v.met_line + v.says(evidence, fact, lead), hit, None,
                    "", "")
    missing = [s for s in v.sources if s not in lead]
    entry: Unknown = {"id": v.id, "section": "trait", "label": v.label, "missing": missing,
                      "points": v.points, "could_change_status": False}
    return Part("unknown", [], missing, v.unknown_line + w.missing(missing), entry, None, "",
                "")


