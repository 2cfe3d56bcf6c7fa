"""Compile a rule base's conditions to durable-rules conditions, and leads to engine facts.

Three-valued logic on a two-valued engine: each condition C becomes two engine conditions,
``C+`` (C is certainly true) and ``C-`` (C is certainly false). A missing value makes both
atoms on it fail, so neither fires and C is unknown:

    atom  x >= 5     +: {"$gte": {"x": 5}}        -: {"$lt": {"x": 5}}
    known(x)         +: {"$ex": {"x": 1}}         -: {"$nex": {"x": 1}}  (guarded, see adapter)
    not A            +: A-                        -: A+
    A and B          +: A+ and B+                 -: A- or B-
    A or B           +: A+ or B+                  -: A- and B-

Values durable-rules cannot compute reliably (list membership and counts, dates, regex) are
derived in Python (``FactBuilder``) and matched as plain numbers and booleans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from qualify.adapter import MARK, MAX_KEYS, MAX_PATHS, Condition, keys_of, paths
from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.errors import EngineError, Problem, RulebaseError
from qualify.patterns import compile_pattern
from qualify.rulebook import Rule, Rulebook

_OP = {"==": None, "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_GUARD: Condition = {"$ex": {MARK: 1}}
Never = None  # a condition that can never hold: no engine rule at all


def _atom(key: str, op: str, value: Any) -> Condition:
    name = _OP[op]
    return {key: value} if name is None else {name: {key: value}}


def _all(items: list[Condition | None]) -> Condition | None:
    if any(i is None for i in items):
        return None
    conds = [i for i in items if i is not None]
    flat: list[Condition] = []
    for c in conds:
        flat.extend(c.get("$and", [c]))
    return flat[0] if len(flat) == 1 else {"$and": flat}


def _any(items: list[Condition | None]) -> Condition | None:
    conds = [i for i in items if i is not None]
    if not conds:
        return None
    flat: list[Condition] = []
    for c in conds:
        flat.extend(c.get("$or", [c]))
    return flat[0] if len(flat) == 1 else {"$or": flat}


def compile_expr(expr: Expr, positive: bool = True) -> Condition | None:
    """The engine condition for "expr is certainly true" (or false); None if it never is."""
    match expr:
        case Const():
            return _GUARD if expr.value == positive else None
        case Cmp():
            op = expr.op if positive else NEGATE[expr.op]
            return _atom(expr.ref.key, op, expr.value)
        case In():
            if positive != expr.negated:  # inside the list
                return _any([{expr.ref.key: v} for v in expr.values])
            return _all([{"$neq": {expr.ref.key: v}} for v in expr.values])
        case Known():
            return {"$ex": {expr.ref.key: 1}} if positive else {"$nex": {expr.ref.key: 1}}
        case Not():
            return compile_expr(expr.item, not positive)
        case And():
            parts = [compile_expr(i, positive) for i in expr.items]
            return _all(parts) if positive else _any(parts)
        case Or():
            parts = [compile_expr(i, positive) for i in expr.items]
            return _any(parts) if positive else _all(parts)
        case _:
            assert_never(expr)


def _only_nex(cond: Condition) -> bool:
    """True if some match path of ``cond`` tests only absences (it would match any fact)."""
    ((op, body),) = cond.items()
    if op == "$or":
        return any(_only_nex(c) for c in body)
    if op == "$and":
        return all(_only_nex(c) for c in body)
    return op == "$nex"


def guarded(cond: Condition) -> Condition:
    """Make a condition unable to match the engine's own state fact (pitfall 1)."""
    if _only_nex(cond):
        return _all([_GUARD, cond]) or _GUARD
    return cond


# ----------------------------------------------------------------------------- facts


def _derive(ref: Ref) -> Callable[[Mapping[str, Any], dt.date], Any]:
    src = ref.source
    assert src is not None
    if ref.func == "contains":
        needle = (ref.arg or "").casefold()
        return lambda lead, _: any(item.casefold() == needle for item in lead[src])
    if ref.func == "days_since":
        return lambda lead, as_of: (as_of - lead[src]).days
    if ref.func == "matches":
        pattern = compile_pattern(ref.arg or "")
        return lambda lead, _: pattern.search(lead[src]) is not None
    raise EngineError(f"unknown function {ref.func}")  # pragma: no cover


class FactBuilder:
    """Builds the flat engine fact for a typed lead: the keys some rule reads, nothing else."""

    def __init__(self, rulebook: Rulebook, refs: Iterable[Ref]) -> None:
        plain: dict[str, str] = {}  # field name -> type
        derived: dict[str, tuple[str, Callable[[Mapping[str, Any], dt.date], Any]]] = {}
        for ref in refs:
            if ref.kind == "verdict" or ref.source is None:
                continue
            if ref.kind == "field" or ref.func == "count":
                plain[ref.source] = rulebook.fields[ref.source].type
            else:
                derived[ref.key] = (ref.source, _derive(ref))
        self.plain = tuple(plain.items())
        self.derived = tuple((k, src, fn) for k, (src, fn) in derived.items())

    def build(self, lead: Mapping[str, Any], as_of: dt.date) -> dict[str, Any]:
        fact: dict[str, Any] = {}
        for name, kind in self.plain:
            if name in lead:
                v = lead[name]
                if kind == "date":
                    v = v.toordinal()
                elif kind == "list":
                    v = len(v)
                fact[name] = v
        for key, src, fn in self.derived:
            if src in lead:
                fact[key] = fn(lead, as_of)
        return fact


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Compiled:
    """Engine conditions for a rule base, in two stages.

    Stage 1 decides qualifiers and traits (a ``+`` and a ``-`` condition each); stage 2
    picks the next step, reading the stage-1 verdict as extra facts.
    """

    stage1: dict[str, Condition]  # "<i>+" / "<i>-" -> condition; i indexes rules_1
    stage2: dict[str, Condition]  # "<j>+" -> condition; j indexes next_steps
    rules_1: tuple[Rule, ...]
    facts: FactBuilder
    stage2_keys: tuple[str, ...]  # lead fact keys that stage 2 reads


def compile_rulebook(rulebook: Rulebook) -> Compiled:
    """Compile every rule; a condition too large for the engine is a located RulebaseError."""
    rules_1 = rulebook.qualifiers + rulebook.traits
    problems: list[Problem] = []

    def add(table: dict[str, Condition], name: str, rule: Rule, positive: bool) -> None:
        cond = compile_expr(rule.expr, positive)
        if cond is None:
            return
        cond = guarded(cond)
        n = paths(cond)
        if n >= MAX_PATHS:
            problems.append(Problem(
                "too-complex", f"'{rule.id}' expands to {n} engine match paths (at most "
                f"{MAX_PATHS - 1})", rulebook.source, rule.line, 1,
                "split it into several rules, or use fewer 'or' branches and 'in' values"))
        table[name] = cond

    stage1: dict[str, Condition] = {}
    for i, rule in enumerate(rules_1):
        add(stage1, f"{i}+", rule, True)
        add(stage1, f"{i}-", rule, False)
    stage2: dict[str, Condition] = {}
    for j, step in enumerate(rulebook.next_steps):
        add(stage2, f"{j}+", step, True)
    for table, what in ((stage1, "qualifiers and traits"), (stage2, "next steps")):
        n = len({k for cond in table.values() for k in keys_of(cond)} - {MARK})
        if n > MAX_KEYS:
            problems.append(Problem(
                "too-many-values", f"the {what} read {n} values (fields and derived values "
                f"such as contains() and days_since()); the engine takes at most {MAX_KEYS}",
                rulebook.source, 1, 1, "remove rules or fields, or share derived values"))
    if problems:
        raise RulebaseError(problems)
    refs = [ref for rule in rulebook.rules for ref in rule.expr.refs()]
    keys2 = {ref.key for step in rulebook.next_steps for ref in step.expr.refs()
             if ref.kind != "verdict"}
    return Compiled(stage1=stage1, stage2=stage2, rules_1=rules_1,
                    facts=FactBuilder(rulebook, refs), stage2_keys=tuple(sorted(keys2)))
