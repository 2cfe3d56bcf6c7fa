"""A plain reference evaluator of the condition language, written from its specification.

It shares nothing with the engine but the parsed tree: no compiler, no durable-rules, no
derived-fact builder. Three-valued (Kleene) logic: None is unknown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from qualify.conditions import And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook

Lead = Mapping[str, Any]


def value_of(ref: Ref, lead: Lead, as_of: dt.date, verdict: Mapping[str, Any]) -> Any:
    """The value a ref reads, or None when it is missing."""
    if ref.kind == "verdict":
        return verdict[ref.name]
    assert ref.source is not None
    if ref.source not in lead:
        return None
    v = lead[ref.source]
    if ref.kind == "field":
        return v.toordinal() if isinstance(v, dt.date) else v
    if ref.func == "count":
        return len(v)
    if ref.func == "contains":
        return any(item.lower() == (ref.arg or "").lower() for item in v)
    if ref.func == "days_since":
        return (as_of - v).days
    if ref.func == "matches":
        return re2.search(ref.arg or "", v) is not None
    raise AssertionError(ref.func)


def evaluate(expr: Expr, lead: Lead, as_of: dt.date,
             verdict: Mapping[str, Any] | None = None) -> bool | None:
    verdict = verdict or {}
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Known):
        assert expr.ref.source is not None
        return expr.ref.source in lead
    if isinstance(expr, Cmp):
        v = value_of(expr.ref, lead, as_of, verdict)
        if v is None:
            return None
        x = expr.value
        return {"==": v == x, "!=": v != x, "<": v < x, "<=": v <= x, ">": v > x,
                ">=": v >= x}[expr.op]
    if isinstance(expr, In):
        v = value_of(expr.ref, lead, as_of, verdict)
        if v is None:
            return None
        return (v not in expr.values) if expr.negated else (v in expr.values)
    if isinstance(expr, Not):
        r = evaluate(expr.item, lead, as_of, verdict)
        return None if r is None else not r
    if isinstance(expr, And):
        results = [evaluate(i, lead, as_of, verdict) for i in expr.items]
        if False in results:
            return False
        return None if None in results else True
    if isinstance(expr, Or):
        results = [evaluate(i, lead, as_of, verdict) for i in expr.items]
        if True in results:
            return True
        return None if None in results else False
    raise AssertionError(type(expr))


@dataclass(frozen=True)
class Expected:
    qualifiers: dict[str, str]
    status: str
    fired: list[str]
    unknown: list[str]
    score: int
    grade: str
    next_step: str


def reference_verdict(rb: Rulebook, lead: Lead, as_of: dt.date) -> Expected:
    """What a verdict must say, computed the slow, obvious way."""
    state = {True: "met", False: "unmet", None: "unknown"}
    qualifiers = {q.id: state[evaluate(q.expr, lead, as_of)] for q in rb.qualifiers}
    if "unmet" in qualifiers.values():
        status = "disqualified"
    elif "unknown" in qualifiers.values():
        status = "needs_discovery"
    else:
        status = "qualified"
    traits = {t.id: evaluate(t.expr, lead, as_of) for t in rb.traits}
    fired = [t.id for t in rb.traits if traits[t.id] is True]
    raw = rb.score_base + sum(t.points for t in rb.traits if traits[t.id] is True)
    score = max(rb.score_min, min(rb.score_max, raw))
    grade = next(g.id for g in sorted(rb.grades, key=lambda g: -g.min_score)
                 if score >= g.min_score or g is rb.grades[-1])
    verdict: dict[str, Any] = {f"qualifier.{k}": v for k, v in qualifiers.items()}
    verdict |= {f"trait.{k}": v is True for k, v in traits.items()}
    verdict |= {"status": status, "grade": grade, "score": score}
    step = next(s.id for s in rb.next_steps if evaluate(s.expr, lead, as_of, verdict) is True)
    unknown = [q for q, s in qualifiers.items() if s == "unknown"]
    unknown += [t for t, s in traits.items() if s is None]
    return Expected(qualifiers, status, fired, unknown, score, grade, step)
