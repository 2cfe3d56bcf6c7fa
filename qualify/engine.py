"""The engine: a compiled rule base that turns leads into verdicts.

    engine = Engine.from_path("rules/default.yaml")
    verdict = engine.score({"lead_id": "L1", "budget": "25000"}, as_of=date(2026, 1, 1))

Per lead: read (type the fields) -> build the engine fact (derived values) -> match stage 1
(qualifiers, traits) in durable-rules -> score, grade, status -> match stage 2 (next steps,
reading the stage-1 verdict) -> explain. An Engine is immutable and safe to share between
threads; ``close`` frees the engine memory once no call is in flight.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qualify.adapter import Matcher
from qualify.compiler import compile_rulebook
from qualify.errors import QualifyError
from qualify.explain import Atom, Words, decide, show_value
from qualify.leads import Lead, LeadReader
from qualify.rulebook import Rule, Rulebook, default_rules_path, load_rulebook
from qualify.verdict import (
    Evidence,
    NextStep,
    QualifierVerdict,
    RulebookRef,
    TraitHit,
    Unknown,
    Verdict,
    Weakest,
)

State = Literal["met", "unmet", "unknown"]
LOCALES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the matching decided for one lead, before it is explained."""

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

    def __init__(self, rulebook: Rulebook) -> None:
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
        self._n_qualifiers = len(rulebook.qualifiers)
        self._ref = RulebookRef(name=rulebook.name, version=rulebook.version,
                                sha256=rulebook.sha256)
        verdict_keys = {ref.key for s in rulebook.next_steps for ref in s.expr.refs()
                        if ref.kind == "verdict"}
        self._q_keys = tuple((i, f"__q_{r.id}") for i, r in enumerate(rulebook.qualifiers)
                             if f"__q_{r.id}" in verdict_keys)
        n = self._n_qualifiers
        self._t_keys = tuple((n + i, f"__t_{r.id}") for i, r in enumerate(rulebook.traits)
                             if f"__t_{r.id}" in verdict_keys)
        self._v_keys = frozenset(verdict_keys)
        self._words = {loc: Words(rulebook, loc) for loc in LOCALES}

    @classmethod
    def from_path(cls, path: str | Path | None = None) -> Engine:
        """Load, check and compile a rule base (default: the bundled one)."""
        return cls(load_rulebook(path or default_rules_path()))

    def close(self) -> None:
        """Free the engine's memory; waits for calls in flight. Later calls fail."""
        self._stage1.close()
        self._stage2.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ deciding

    def decide(self, raw: Any, as_of: dt.date | None = None) -> Decision:
        """Match a raw lead. Raises LeadError for a bad lead, EngineError if the engine fails."""
        rb = self.rulebook
        c = self.compiled
        lead = self.reader.read(raw)
        fact = c.facts.build(lead, as_of or today())
        fired = self._stage1.match(fact)
        states = tuple(True if f"{i}+" in fired else False if f"{i}-" in fired else None
                       for i in range(len(c.rules_1)))
        q = states[: self._n_qualifiers]
        status = ("disqualified" if False in q else
                  "needs_discovery" if None in q else "qualified")
        raw_score = rb.score_base + sum(t.points for t, s in
                                        zip(rb.traits, states[self._n_qualifiers:],
                                            strict=True) if s)
        score = min(max(raw_score, rb.score_min), rb.score_max)
        grade = rb.grade_for(score).id

        fact2 = {k: fact[k] for k in c.stage2_keys if k in fact}
        for i, key in self._q_keys:
            fact2[key] = _state(states[i])
        for i, key in self._t_keys:
            fact2[key] = states[i] is True
        if "__grade" in self._v_keys:
            fact2["__grade"] = grade
        if "__status" in self._v_keys:
            fact2["__status"] = status
        if "__score" in self._v_keys:
            fact2["__score"] = score
        steps = self._stage2.match(fact2)
        step = next(s for j, s in enumerate(rb.next_steps) if f"{j}+" in steps)
        return Decision(lead, fact, fact2, states, step, status, score, grade)

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
        rb = self.rulebook
        w = self._words[loc]
        lines: list[str] = []
        qualifiers: dict[str, QualifierVerdict] = {}
        q_atoms: dict[str, list[Atom]] = {}
        q_missing: dict[str, list[str]] = {}
        unknown: list[Unknown] = []
        for rule, state in zip(rb.qualifiers, d.states, strict=False):
            _, atoms, missing = decide(rule.expr, d.fact, d.lead)
            st = _state(state)
            q_atoms[rule.id], q_missing[rule.id] = atoms, missing
            label = rule.label[loc]
            qualifiers[rule.id] = QualifierVerdict.model_construct(
                state=st, label=label, evidence=_evidence(atoms), missing=missing)
            mark = {"met": "✓", "unmet": "✗", "unknown": "?"}[st]
            why = w.atoms(atoms) if atoms else w.missing(missing)
            lines.append(f"{mark} {label}: {w.state(st)} ({why})")
            if state is None:
                unknown.append(Unknown.model_construct(
                    id=rule.id, section="qualifier", label=label, missing=missing, points=0,
                    could_change_status=True))
        traits: list[TraitHit] = []
        factor_points: dict[str, int] = {}
        for rule, state in zip(rb.traits, d.states[self._n_qualifiers:], strict=True):
            label = rule.label[loc]
            if state is True:
                _, atoms, _ = decide(rule.expr, d.fact, d.lead)
                traits.append(TraitHit.model_construct(
                    id=rule.id, kind=rule.kind, points=rule.points, label=label,
                    evidence=_evidence(atoms)))
                lines.append(f"{rule.points:+d} {label}: {w.atoms(atoms)}")
                if rule.factor:
                    factor_points[rule.factor] = factor_points.get(rule.factor, 0) + rule.points
            elif state is None:
                _, _, missing = decide(rule.expr, d.fact, d.lead)
                unknown.append(Unknown.model_construct(
                    id=rule.id, section="trait", label=label, missing=missing,
                    points=rule.points, could_change_status=False))
                lines.append(f"? {label} ({rule.points:+d}): {w.missing(missing)}")
        grade = rb.grade_for(d.score)
        head = (f"{d.lead['lead_id']}: {w.status(d.status)}, score {d.score}, grade {grade.id}"
                f" ({grade.label[loc]})" if loc == "en" else
                f"{d.lead['lead_id']}:{w.status(d.status)},得分 {d.score},评级 {grade.id}"
                f"({grade.label[loc]})")
        weakest = self._weakest(d, loc, q_atoms, q_missing, factor_points)
        step = self._next_step(d, loc, q_atoms, q_missing)
        if weakest:
            lines.append(("weakest: " if loc == "en" else "短板:") + weakest.reason)
        lines.append(("next: " if loc == "en" else "下一步:") + f"{step.label}: {step.reason}")
        return Verdict.model_construct(
            lead_id=d.lead["lead_id"], rulebook=self._ref, as_of=as_of, locale=loc,
            qualifiers=qualifiers, status=d.status, score=d.score, grade=d.grade,
            traits=traits, unknown=unknown, weakest=weakest, next_step=step,
            explanation=[head, *lines])

    def _weakest(self, d: Decision, loc: str, q_atoms: Mapping[str, list[Atom]],
                 q_missing: Mapping[str, list[str]],
                 factor_points: Mapping[str, int]) -> Weakest | None:
        """The shortest stave: an unmet qualifier, else the factor whose traits cost most
        points, else an unknown qualifier, else the factor contributing least."""
        rb = self.rulebook
        w = self._words[loc]
        q_state = {r.id: _state(s) for r, s in zip(rb.qualifiers, d.states, strict=False)}
        ranked = []
        for order, factor in enumerate(rb.factors):
            pts = factor_points.get(factor, 0)
            st = q_state.get(factor)
            rank = 0 if st == "unmet" else 1 if pts < 0 else 2 if st == "unknown" else 3
            ranked.append((rank, pts, order, factor, st))
        if not ranked:
            return None
        rank, pts, _, factor, st = min(ranked)
        label = rb.factors[factor][loc]
        if rank == 0:
            reason = f"{label}: {w.state('unmet')} ({w.atoms(list(q_atoms[factor]))})"
        elif rank == 1:
            reason = (f"{label}: {pts:+d} points" if loc == "en" else f"{label}:{pts:+d} 分")
        elif rank == 2:
            reason = f"{label}: {w.state('unknown')} ({w.missing(list(q_missing[factor]))})"
        else:
            reason = (f"{label}: the fewest points ({pts:+d})" if loc == "en"
                      else f"{label}:得分最少({pts:+d})")
        return Weakest.model_construct(factor=factor, label=label, reason=reason, points=pts)

    def _next_step(self, d: Decision, loc: str, q_atoms: Mapping[str, list[Atom]],
                   q_missing: Mapping[str, list[str]]) -> NextStep:
        rb = self.rulebook
        w = self._words[loc]
        step = d.step
        q_state = {r.id: _state(s) for r, s in zip(rb.qualifiers, d.states, strict=False)}
        names = [r.name for r in step.expr.refs() if r.kind == "verdict"]
        read_q = [n.split(".", 1)[1] for n in names if n.startswith("qualifier.")]
        if "status" in names:
            read_q += [q for q, s in q_state.items() if s != "met"]
        focus = read_q or [q for q, s in q_state.items() if s == "unknown"]
        _, own, _ = decide(step.expr, d.stage2_fact, d.lead)
        evidence = [a for a in own if not a[0].startswith(("qualifier.", "trait.")) and
                    a[0] not in ("status", "grade", "score")]
        for q in read_q:
            evidence += q_atoms.get(q, [])
        missing = list(dict.fromkeys(m for q in focus for m in q_missing.get(q, [])))
        unmet = [r.label[loc] for r in rb.qualifiers if q_state[r.id] == "unmet"]
        unknown = [r.label[loc] for r in rb.qualifiers if q_state[r.id] == "unknown"]
        grade = rb.grade_for(d.score)
        values: dict[str, str] = {
            "unmet": w.fields(unmet) if unmet else "-",
            "unknown": w.fields(unknown) if unknown else "-",
            "missing": w.fields(missing) if missing else "-",
            "evidence": w.atoms(evidence) if evidence else "-",
            "grade": grade.id, "score": str(d.score), "status": w.status(d.status),
        }
        reason = _Template.fill(step.reason[loc], values, d.lead)
        return NextStep.model_construct(id=step.id, label=step.label[loc], reason=reason)


def _state(state: bool | None) -> State:
    return "met" if state else "unknown" if state is None else "unmet"


def _evidence(atoms: list[Atom]) -> list[Evidence]:
    return [Evidence.model_construct(field=f, value=v, test=t, holds=h) for f, v, t, h in atoms]


class _Template(dict[str, str]):
    """Fills a reason: {field} is the lead's value (or "?"), other names from ``values``."""

    lead: Mapping[str, Any]

    @classmethod
    def fill(cls, text: str, values: Mapping[str, str], lead: Mapping[str, Any]) -> str:
        t = cls(values)
        t.lead = lead
        return string.Formatter().vformat(text, (), t)

    def __missing__(self, key: str) -> str:
        if key in self.lead:
            v = self.lead[key]
            if isinstance(v, dt.date):
                return v.isoformat()
            return v if isinstance(v, str) else show_value(list(v) if isinstance(v, tuple) else v)
        return "?"
