"""The engine: a compiled rule base that turns leads into verdicts.

    engine = Engine.from_path("rules/default.yaml")
    verdict = engine.score({"lead_id": "L1", "budget": "25000"}, as_of=date(2026, 1, 1))

Per lead: read (type the fields) -> build the engine fact (derived values) -> match stage 1
(qualifiers, traits) in durable-rules -> score, grade, status -> match stage 2 (next steps,
reading the stage-1 verdict) -> explain. Each match goes through the decision memo
(memo.py), which asks durable-rules only for facts unlike any it has seen; explained parts
are kept per rule and values. An Engine gives the same verdicts as a fresh one, is safe to
share between threads, and ``close`` frees the engine memory once no call is in flight.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Hashable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, cast

from qualify.adapter import Matcher
from qualify.compiler import compile_rulebook
from qualify.errors import EngineClosedError, QualifyError
from qualify.explain import Explainer, compile_explainer
from qualify.kept import Kept
from qualify.leads import Lead, LeadReader
from qualify.memo import Match, Memo
from qualify.rulebook import Rule, Rulebook, default_rules_path, load_rulebook
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

State = Literal["met", "unmet", "unknown"]
# A rule explained for one state and set of values: state, evidence, missing, its line,
# its entry in the verdict's traits or unknown (a TraitHit, an Unknown, or None), for a
# qualifier its entry in the verdict's qualifiers, the words its line ends with (the
# evidence, or "missing" and the missing fields) and the missing fields' words alone.
# Verdicts share these parts, as they share the rule base's labels: a verdict is a value,
# not to be changed.
_Part = tuple[State, list[Evidence], list[str], str, Any, QualifierVerdict | None, str, str]
# The weakest factor as the states and points choose it: factor, label, points, reason,
# and the index of the qualifier whose words end the reason (None: the reason is whole)
_Choice = tuple[str, str, int, str, int | None]
EXPLAIN_MEMO = 512  # explained parts kept per rule and locale (about 1 KB each)
WEAKEST_MEMO = 4096  # weakest factors, next steps, stage-1 outcomes kept, then they start over
# Stage 1's outcome: rule states, status, score, grade, and the verdict facts of stage 2
_Outcome = tuple[tuple[bool | None, ...], str, int, str, tuple[tuple[str, Any], ...]]
LOCALES = ("en", "zh")


class Decision(NamedTuple):
    """What the matching decided for one lead, before it is explained. (A named tuple: a
    frozen dataclass took 2.2 µs to build, this 0.7.)"""

    lead: Lead
    fact: dict[str, Any]
    stage2_fact: dict[str, Any]
    states: tuple[bool | None, ...]  # per qualifier then trait: True, False or None
    step: Rule
    status: str
    score: int
    grade: str


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class Engine:
    """A rule base compiled to durable-rules, ready to score leads."""

    def __init__(self, rulebook: Rulebook, *, memo: bool = True) -> None:
        """``memo=False`` sends every lead to durable-rules (memo.py says what it saves) and
        explains every rule afresh (explained parts are otherwise kept per rule and values)."""
        self.rulebook = rulebook
        self.compiled = c = compile_rulebook(rulebook)
        self.reader = LeadReader(rulebook)
        tag = rulebook.sha256[:12]
        self._stage1 = Matcher(c.stage1, tag + "_1")
        try:
            self._stage2 = Matcher(c.stage2, tag + "_2")
        except BaseException:
            self._stage1.close()
            raise
        self._closed = False
        self._match_1: Match = self._stage1.match
        self._match_2: Match = self._stage2.match
        self.memos: tuple[Memo, ...] = ()  # stage 1 and stage 2, with their hit counts
        if memo:
            self.memos = (Memo(c.stage1, self._match_1), Memo(c.stage2, self._match_2))
            self._match_1, self._match_2 = (m.match for m in self.memos)
        self._n_qualifiers = len(rulebook.qualifiers)
        self._q_index = {q.id: i for i, q in enumerate(rulebook.qualifiers)}
        # each factor in order: (order, factor, its qualifier's index, or -1 for none)
        self._factor_plan = tuple((order, f, self._q_index.get(f, -1))
                                  for order, f in enumerate(rulebook.factors))
        self._n_rules_1 = len(c.rules_1)
        # each stage-1 condition: (rule index, state it shows, points it adds to the score)
        self._fired_info = {f"{i}{sign}": (i, sign == "+", rule.points
                                           if sign == "+" and i >= self._n_qualifiers else 0)
                            for i, rule in enumerate(c.rules_1) for sign in "+-"}
        self._names_2 = tuple((f"{j}+", s) for j, s in enumerate(rulebook.next_steps))
        self._ref: RulebookRef = freeze({"name": rulebook.name, "version": rulebook.version,
                                         "sha256": rulebook.sha256})  # in every verdict
        verdict_keys = {ref.key for s in rulebook.next_steps for ref in s.expr.refs()
                        if ref.kind == "verdict"}
        self._q_keys = tuple((i, f"__q_{r.id}") for i, r in enumerate(rulebook.qualifiers)
                             if f"__q_{r.id}" in verdict_keys)
        n = self._n_qualifiers
        self._t_keys = tuple((n + i, f"__t_{r.id}") for i, r in enumerate(rulebook.traits)
                             if f"__t_{r.id}" in verdict_keys)
        self._v_keys = frozenset(verdict_keys)
        self._words = {loc: Words(rulebook, loc) for loc in LOCALES}
        self._keep = WEAKEST_MEMO if memo else 0  # entries per table below; 0: none
        self._weakest_memo: dict[Hashable, _Choice] = {}  # words by (locale, choice)
        self._outcomes: Kept[_Outcome] = Kept(self._keep)  # by stage 1's fired set
        self._steps_by_fired: dict[Hashable, Rule] = {}  # the next step by stage 2's
        self._views = {loc: tuple(_View.of(r, self._words[loc], EXPLAIN_MEMO if memo else 0)
                                  for r in c.rules_1)
                       for loc in LOCALES}
        self._part_keys = part_keys(c.rules_1)
        # per next step: explainer per locale, qualifiers it reads, reads status?, lead fields
        # it reads
        self._steps: dict[str, tuple[dict[str, Explainer], tuple[str, ...], bool,
                                     frozenset[str]]] = {}
        # each reason as (literal, placeholder or None) pieces; the rule base allows no
        # format spec or conversion in them
        self._reasons = {(s.id, loc): tuple((text, name) for text, name, _, _
                                            in string.Formatter().parse(s.reason[loc]))
                         for s in rulebook.next_steps for loc in LOCALES}
        self._reason_names = {key: frozenset(n for _, n in pieces if n)
                              for key, pieces in self._reasons.items()}
        for s in rulebook.next_steps:
            names = [r.name for r in s.expr.refs() if r.kind == "verdict"]
            self._steps[s.id] = (
                {loc: compile_explainer(s.expr, self._words[loc], self._keep and EXPLAIN_MEMO)
                 for loc in LOCALES},
                tuple(dict.fromkeys(n.split(".", 1)[1] for n in names
                                    if n.startswith("qualifier."))),
                "status" in names,
                frozenset(r.name for r in s.expr.refs() if r.kind != "verdict"))

    @classmethod
    def from_path(cls, path: str | Path | None = None, *, memo: bool = True) -> Engine:
        """Load, check and compile a rule base (default: the bundled one)."""
        return cls(load_rulebook(path or default_rules_path()), memo=memo)

    def close(self) -> None:
        """Free the engine's memory; waits for calls in flight. Later calls fail."""
        self._closed = True  # the memo would otherwise go on answering
        self._stage1.close()
        self._stage2.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ deciding

    def decide(self, raw: Any, as_of: dt.date | None = None) -> Decision:
        """Match a raw lead. Raises LeadError for a bad lead, EngineError if the engine fails."""
        if self._closed:
            raise EngineClosedError("the engine was closed")
        c = self.compiled
        lead = self.reader.read(raw)
        fact = c.facts.build(lead, as_of or today())
        fired = self._match_1(fact)
        # with the memo, fired sets are frozen, and the same object for facts alike
        outcome = self._outcomes.get(cast(Hashable, fired))
        if outcome is None:
            outcome = self._outcomes.keep(cast(Hashable, fired), self._outcome(fired))
        states, status, score, grade, verdict_facts = outcome
        fact2 = {k: fact[k] for k in c.stage2_keys if k in fact}
        fact2.update(verdict_facts)
        steps = self._match_2(fact2)
        step = self._steps_by_fired.get(cast(Hashable, steps)) if self._keep else None
        if step is None:
            step = _keep(self._steps_by_fired, cast(Hashable, steps),
                         next(s for name, s in self._names_2 if name in steps), self._keep)
        return Decision(lead, fact, fact2, states, step, status, score, grade)

    def _outcome(self, fired: AbstractSet[str]) -> _Outcome:
        """What stage 1's fired conditions make of a lead: rule states, status, score,
        grade, and the verdict facts stage 2 reads."""
        rb = self.rulebook
        found: list[bool | None] = [None] * self._n_rules_1
        raw_score = rb.score_base
        info = self._fired_info
        for name in fired:
            i, yes, points = info[name]
            if yes or found[i] is None:  # never both, but were they, "+" would win
                found[i] = yes
            raw_score += points
        states = tuple(found)
        q = found[: self._n_qualifiers]
        status = ("disqualified" if False in q else
                  "needs_discovery" if None in q else "qualified")
        score = min(max(raw_score, rb.score_min), rb.score_max)
        grade = rb.grade_for(score).id
        facts: dict[str, Any] = {}
        for i, key in self._q_keys:
            facts[key] = _state(states[i])
        for i, key in self._t_keys:
            facts[key] = states[i] is True
        if "__grade" in self._v_keys:
            facts["__grade"] = grade
        if "__status" in self._v_keys:
            facts["__status"] = status
        if "__score" in self._v_keys:
            facts["__score"] = score
        return states, status, score, grade, tuple(facts.items())

    def score(self, raw: Any, *, as_of: dt.date | None = None,
              locale: str | None = None) -> Verdict:
        """The verdict for one lead. Raises LeadError (bad lead) or EngineError."""
        as_of = as_of or today()
        loc = locale or self.rulebook.locale
        if loc not in LOCALES:
            raise QualifyError(f"unknown locale {loc!r} (use en or zh)")
        return self.explain(self.decide(raw, as_of), as_of, loc)

    # ------------------------------------------------------------------ explaining

    def explain(self, d: Decision, as_of: dt.date, loc: str) -> Verdict:
        """Build the verdict for a decision: evidence, unknowns, weakest factor, next step."""
        rb = self.rulebook
        w = self._words[loc]
        fact, lead = d.fact, d.lead
        lines: list[str] = []
        qualifiers: dict[str, QualifierVerdict] = {}
        q_parts: list[_Part] = []
        unknown: list[Unknown] = []
        views = self._views[loc]
        n = self._n_qualifiers
        keys = self._part_keys(lead, as_of, d.states)
        for v, state, key in zip(views[:n], d.states, keys, strict=False):
            part = v.memo.get(key)
            if part is None:
                part = v.remember(key, _qualifier_part(v, state, fact, lead, w))
            q_parts.append(part)
            if part[4] is not None:
                unknown.append(part[4])
            lines.append(part[3])
            qualifiers[v.id] = part[5]  # type: ignore[assignment]
        traits: list[TraitHit] = []
        factor_points: dict[str, int] = {}
        for v, state, key in zip(views[n:], d.states[n:], keys[n:], strict=True):
            if state is False:
                continue
            part = v.memo.get(key)
            if part is None:
                part = v.remember(key, _trait_part(v, state, fact, lead, w))
            lines.append(part[3])
            if state:
                traits.append(part[4])
                if v.factor:
                    factor_points[v.factor] = factor_points.get(v.factor, 0) + v.points
            else:
                unknown.append(part[4])
        grade = rb.grade_for(d.score)
        if loc == "zh":
            head = (f"{lead['lead_id']}：{w.status[d.status]}，得分 {d.score}，"
                    f"评级 {grade.id}（{grade.label[loc]}）")
        else:
            head = (f"{lead['lead_id']}: {w.status[d.status]}, score {d.score}, "
                    f"grade {grade.id} ({grade.label[loc]})")
        weakest = self._weakest(d.states[:n], factor_points, loc, q_parts)
        step = self._next_step(d, loc, q_parts)
        if weakest:
            lines.append(("短板：" if loc == "zh" else "Weakest area: ") + weakest["reason"])
        lines.append(("下一步：" if loc == "zh" else "Next step: ")
                     + f"{step['label']}{w.dash}{step['reason']}")
        return build_verdict({
            "lead_id": lead["lead_id"], "rulebook": self._ref, "as_of": as_of, "locale": loc,
            "qualifiers": qualifiers, "status": d.status, "score": d.score, "grade": d.grade,
            "traits": traits, "unknown": unknown, "weakest": weakest, "next_step": step,
            "explanation": [head, *lines]})

    def _weakest(self, q_states: tuple[bool | None, ...], factor_points: dict[str, int],
                 loc: str, q_parts: list[_Part]) -> Weakest | None:
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
            choice = _keep(self._weakest_memo, key, self._words_of_weakest(*best, loc),
                           self._keep)
        factor, label, points, reason, q_index = choice
        if q_index is not None:
            reason += q_parts[q_index][6]
        return {"factor": factor, "label": label, "reason": reason, "points": points}

    def _words_of_weakest(self, rank: int, pts: int, order: int, loc: str) -> _Choice:
        """The weakest factor's label and reason (for an unmet or unknown qualifier, the
        reason's start: its part's words end it)."""
        rb = self.rulebook
        w = self._words[loc]
        factor = self._factor_plan[order][1]
        label = rb.factors[factor][loc]
        head = f"{label}{w.colon}"
        if rank == 0:
            return factor, label, pts, f"{head}{w.state['unmet']}{w.dash}", self._q_index[factor]
        if rank == 2:
            return (factor, label, pts, f"{head}{w.state['unknown']}{w.dash}",
                    self._q_index[factor])
        return factor, label, pts, label + w.w["because"].format(
            w.w["costs" if rank == 1 else "fewest"].format(pts)), None

    def _next_step(self, d: Decision, loc: str, q_parts: list[_Part]) -> NextStep:
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
                            if p[0] != "met"))))
        values: dict[str, str] = {}
        if "evidence" in used:
            own = explainers[loc](d.stage2_fact, d.lead, True)
            texts = [w.evidence([e for e in own if e["field"] in fields])]
            texts += [p[6] for p in (q_parts[index[q]] for q in read_q) if p[0] != "unknown"]
            values["evidence"] = w.w["sep"].join(t for t in texts if t) or "-"
        if "missing" in used:
            focus = read_q or tuple(q.id for q, p in zip(rb.qualifiers, q_parts, strict=True)
                                    if p[0] == "unknown")
            if len(focus) == 1:
                p = q_parts[index[focus[0]]]
                text = p[7] if p[0] == "unknown" else ""
            else:
                text = w.fields(list(dict.fromkeys(m for q in focus
                                                   for m in q_parts[index[q]][2])))
            values["missing"] = text or "-"
        for name in ("unmet", "unknown"):
            if name in used:
                labels = [r.label[loc] for r, p in zip(rb.qualifiers, q_parts, strict=True)
                          if p[0] == name]
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
    memo: dict[Hashable, _Part]  # explained parts by what they depend on, see ``part_keys``
    memo_size: int  # parts kept (then it starts over); 0: none

    def remember(self, key: Hashable, part: _Part) -> _Part:
        """Keep ``part`` for the next lead alike, read-only: verdicts share it from now on."""
        if not self.memo_size:
            return part
        return _keep(self.memo, key, _frozen(part), self.memo_size)

    @classmethod
    def of(cls, rule: Rule, w: Words, memo_size: int) -> _View:
        label, c, dash = rule.label[w.locale], w.colon, w.dash
        if rule.section == "qualifier":
            met = f"✓ {label}{c}{w.state['met']}{dash}"
            unmet = f"✗ {label}{c}{w.state['unmet']}{dash}"
            unknown = f"? {label}{c}{w.state['unknown']}{dash}"
        else:
            points = f"（{rule.points:+d}）" if w.locale == "zh" else f" ({rule.points:+d})"
            met = f"{rule.points:+d} {label}{dash}"
            unmet = ""
            unknown = f"? {label}{points}{c}"
        return cls(rule.id, rule.kind, rule.points, rule.factor, label, rule.sources,
                   compile_explainer(rule.expr, w, memo_size), w.template(rule), met, unmet,
                   unknown,
                   {}, memo_size)


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


def _frozen(part: _Part) -> _Part:
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

    return state, ev, gone, line, fixed(entry), fixed(q_verdict), text, missing_text


def _qualifier_part(v: _View, state: bool | None, fact: Mapping[str, Any],
                    lead: Mapping[str, Any], w: Words) -> _Part:
    if state is None:
        missing = [s for s in v.sources if s not in lead]
        entry: Unknown = {"id": v.id, "section": "qualifier", "label": v.label,
                          "missing": missing, "points": 0, "could_change_status": True}
        text = w.missing(missing)
        return ("unknown", [], missing, v.unknown_line + text, entry,
                {"state": "unknown", "label": v.label, "evidence": [], "missing": missing},
                text, w.fields(missing))
    evidence = v.explainer(fact, lead, state)
    text = v.says(evidence, fact, lead)
    st: State = "met" if state else "unmet"
    return (st, evidence, [], (v.met_line if state else v.unmet_line) + text, None,
            {"state": st, "label": v.label, "evidence": evidence, "missing": []}, text, "")


def _trait_part(v: _View, state: bool | None, fact: Mapping[str, Any],
                lead: Mapping[str, Any], w: Words) -> _Part:
    if state:
        evidence = v.explainer(fact, lead, state)
        hit: TraitHit = {"id": v.id, "kind": v.kind,  # type: ignore[typeddict-item]
                         "points": v.points, "label": v.label, "evidence": evidence}
        return "met", evidence, [], v.met_line + v.says(evidence, fact, lead), hit, None, "", ""
    missing = [s for s in v.sources if s not in lead]
    entry: Unknown = {"id": v.id, "section": "trait", "label": v.label, "missing": missing,
                      "points": v.points, "could_change_status": False}
    return "unknown", [], missing, v.unknown_line + w.missing(missing), entry, None, "", ""


_T = TypeVar("_T")


def _keep(table: dict[Hashable, _T], key: Hashable, value: _T, limit: int) -> _T:
    """``value``, kept under ``key`` in ``table`` of at most ``limit`` entries (a full table
    starts over; a limit of 0 keeps nothing)."""
    if limit:
        if len(table) >= limit:
            table.clear()
        table[key] = value
    return value


def _state(state: bool | None) -> State:
    return "met" if state else "unknown" if state is None else "unmet"
