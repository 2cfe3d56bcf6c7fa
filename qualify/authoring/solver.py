"""Can a condition ever hold? A search over the few values that matter for each variable.

A condition reads variables (lead fields, derived values such as ``count(x)``, and for next
steps the verdict so far). For a numeric variable, only its position relative to the
constants it is compared with matters, so one value per gap between those constants (and
each constant itself) stands for all; an enum contributes its values, a string the constants
it is compared with plus one other text, and any variable that may be absent also "missing".
A depth-first search over these values, pruned by a three-valued (Kleene) evaluation of
partial assignments, then answers exactly whether some assignment meets every goal.

Sound for warnings: variables are treated as independent except for facts that always hold
(the status follows from the qualifiers, the grade from the score, a derived value exists
when its field does), so the search admits *more* leads than exist. "No lead can" is
therefore never said falsely. A search over its node budget answers "don't know" (``None``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qualify.conditions import STATES, STATUSES, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.leads import MAX_ITEMS
from qualify.rulebook import Rulebook

T, F, U = 1, 2, 4  # outcome bits: true, false, unknown
ALL = T | F | U
NOT_TRUE = F | U
BUDGET = 50_000  # search nodes per question


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
Env = dict[str, Any]
Constraint = Callable[[Env], bool | None]  # False: violated; None: cannot tell yet
Goal = tuple[Expr, int]  # a condition and the outcomes wanted (bits)


class GiveUp(Exception):
    """The search ran over its budget."""


def _atoms(expr: Expr) -> Iterable[Cmp | In | Known]:
    for node in expr.walk():
        if isinstance(node, Cmp | In | Known):
            yield node


def _atom_outcome(atom: Cmp | In | Known, v: Any) -> int:
    if v is MISSING:
        return F if isinstance(atom, Known) else U
    if isinstance(atom, Known):
        return T
    if isinstance(atom, In):
        return T if (v in atom.values) != atom.negated else F
    ok = {"==": v == atom.value, "!=": v != atom.value}.get(atom.op)
    if ok is None:
        ok = {"<": v < atom.value, "<=": v <= atom.value, ">": v > atom.value,
              ">=": v >= atom.value}[atom.op]
    return T if ok else F


def _not(m: int) -> int:
    return (T if m & F else 0) | (F if m & T else 0) | (m & U)


def _and(masks: Sequence[int]) -> int:
    out = F if any(m & F for m in masks) else 0
    if all(m & T for m in masks):
        out |= T
    if all(m & (T | U) for m in masks) and any(m & U for m in masks):
        out |= U
    return out


def _or(masks: Sequence[int]) -> int:
    return _not(_and([_not(m) for m in masks]))


def _integer_points(consts: Iterable[float], lo: float, hi: float) -> set[Any]:
    pts: set[Any] = set()
    for c in consts:
        pts |= {math.ceil(c), math.floor(c) + 1, math.ceil(c) - 1}
    if math.isfinite(lo):
        pts.add(math.ceil(lo))
    if math.isfinite(hi):
        pts.add(math.floor(hi))
    if not pts:
        pts.add(0 if lo <= 0 <= hi else math.ceil(lo))
    return {p for p in pts if lo <= p <= hi}


def _real_points(consts: Iterable[float], lo: float, hi: float) -> set[Any]:
    cs = sorted(set(consts))
    pts: set[Any] = set(cs) | {x for x in (lo, hi) if math.isfinite(x)}
    for left, right in itertools.pairwise([-math.inf, *cs, math.inf]):
        a, b = max(left, lo), min(right, hi)  # the gap between two constants, in bounds
        if a < b:
            if math.isfinite(a) and math.isfinite(b):
                pts.add((a + b) / 2)
            elif math.isfinite(a):
                pts.add(a + 1)
            elif math.isfinite(b):
                pts.add(b - 1)
            else:
                pts.add(0)
    return {p for p in pts if lo <= p <= hi}


@dataclass(frozen=True, slots=True)
class _Var:
    key: str
    values: tuple[Any, ...]
    source: str | None = None  # a derived value exists exactly when this field does


class Space:
    """The variables of one rule base's conditions and the values worth trying for each."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rb = rulebook
        lo = rulebook.score_base + sum(min(t.points, 0) for t in rulebook.traits)
        hi = rulebook.score_base + sum(max(t.points, 0) for t in rulebook.traits)
        lo, hi = (min(max(s, rulebook.score_min), rulebook.score_max) for s in (lo, hi))
        self.score_range = (lo, hi)
        self.grades = tuple(dict.fromkeys(rulebook.grade_for(s).id for s in
                                          range(self.score_range[0], self.score_range[1] + 1)))

    # -- the values of a variable
    def variables(self, exprs: Sequence[Expr]) -> list[_Var]:
        refs: dict[str, list[Ref]] = {}
        consts: dict[str, list[Any]] = {}
        count: dict[str, int] = {}
        for expr in exprs:
            for atom in _atoms(expr):
                key = atom.ref.key
                refs.setdefault(key, []).append(atom.ref)
                count[key] = count.get(key, 0) + 1
                c = consts.setdefault(key, [])
                if isinstance(atom, Cmp):
                    c.append(atom.value)
                elif isinstance(atom, In):
                    c.extend(atom.values)
        if "__status" in refs:  # the status is a function of every qualifier
            for q in self.rb.qualifiers:
                refs.setdefault(f"__q_{q.id}", [Ref("verdict", f"qualifier.{q.id}",
                                                    f"__q_{q.id}", "enum", STATES)])
        if "__grade" in refs:  # and the grade follows from the score
            refs.setdefault("__score", [Ref("verdict", "score", "__score", "integer")])
            consts.setdefault("__score", []).extend(g.min_score for g in self.rb.grades)
        order = sorted(refs, key=lambda k: -count.get(k, 0))
        return [self.variable(k, refs[k], consts.get(k, [])) for k in order]

    def variable(self, key: str, refs: list[Ref], consts: list[Any]) -> _Var:
        ref = refs[0]
        if ref.kind == "verdict":
            values: tuple[Any, ...] = self.verdict_values(key, consts)
            return _Var(key, values)
        funcs = {r.func for r in refs}
        spec = self.rb.fields.get(ref.source or "")
        if "count" in funcs or any(r.type == "list" for r in refs):
            values = tuple(_integer_points(consts, 0, MAX_ITEMS))
        elif ref.kind == "derived" and ref.func == "days_since":
            values = tuple(_integer_points(consts, -math.inf, math.inf))
        elif ref.type == "boolean":
            values = (True, False)
        elif ref.type == "enum":
            values = ref.values
        elif ref.type == "string":
            values = (*dict.fromkeys(consts), "\0other")
        elif ref.type == "date":
            values = tuple(_integer_points(consts, 1, dt.date.max.toordinal()))
        else:
            lo = spec.min if spec and spec.min is not None else -math.inf
            hi = spec.max if spec and spec.max is not None else math.inf
            points = _integer_points if ref.type == "integer" else _real_points
            values = tuple(sorted(points(consts, lo, hi)))
        required = spec is not None and spec.required and ref.kind == "field"
        derived = ref.kind == "derived" and ref.func != "count"
        return _Var(key, values if required else (*values, MISSING),
                    ref.source if derived else None)

    def verdict_values(self, key: str, consts: list[Any]) -> tuple[Any, ...]:
        if key.startswith("__q_"):
            return STATES
        if key.startswith("__t_"):
            return (True, False)
        if key == "__grade":
            return self.grades
        if key == "__status":
            return STATUSES
        return tuple(sorted(_integer_points(consts, *self.score_range)))

    # -- facts that always hold
    def constraints(self, variables: Sequence[_Var]) -> list[Constraint]:
        keys = {v.key for v in variables}
        out: list[Constraint] = []
        if "__status" in keys:
            qkeys = [f"__q_{q.id}" for q in self.rb.qualifiers]
            out.append(lambda env: _status_holds(env, qkeys))
        if "__grade" in keys:
            rb = self.rb
            out.append(lambda env: None if "__grade" not in env or "__score" not in env
                       else rb.grade_for(env["__score"]).id == env["__grade"])
        for v in variables:
            if v.source in keys:
                out.append(_same_presence(v.key, v.source or ""))
        return out


def _status_holds(env: Env, qkeys: list[str]) -> bool | None:
    if "__status" not in env or any(k not in env for k in qkeys):
        return None
    states = [env[k] for k in qkeys]
    status = ("disqualified" if "unmet" in states else
              "needs_discovery" if "unknown" in states else "qualified")
    return bool(env["__status"] == status)


def _same_presence(key: str, source: str) -> Constraint:
    def check(env: Env) -> bool | None:
        if key not in env or source not in env:
            return None
        return (env[key] is MISSING) == (env[source] is MISSING)
    return check


class _Search:
    def __init__(self, space: Space, goals: Sequence[Goal], budget: int) -> None:
        self.goals = goals
        self.vars = space.variables([e for e, _ in goals])
        self.constraints = space.constraints(self.vars)
        self.domain = {v.key: v.values for v in self.vars}
        self.env: Env = {}
        self.static: dict[int, int] = {}  # atom id -> its outcomes over the whole domain
        self.nodes = 0
        self.budget = budget

    def outcome(self, expr: Expr) -> int:
        if isinstance(expr, Const):
            return T if expr.value else F
        if isinstance(expr, Cmp | In | Known):
            key = expr.ref.key
            if key in self.env:
                return _atom_outcome(expr, self.env[key])
            m = self.static.get(id(expr))
            if m is None:
                m = 0
                for v in self.domain[key]:
                    m |= _atom_outcome(expr, v)
                self.static[id(expr)] = m
            return m
        if isinstance(expr, Not):
            return _not(self.outcome(expr.item))
        if isinstance(expr, And):
            return _and([self.outcome(i) for i in expr.items])
        if isinstance(expr, Or):
            return _or([self.outcome(i) for i in expr.items])
        raise TypeError(type(expr).__name__)  # pragma: no cover

    def run(self, i: int = 0) -> bool:
        self.nodes += 1
        if self.nodes > self.budget:
            raise GiveUp
        if any(not self.outcome(e) & want for e, want in self.goals):
            return False
        if any(c(self.env) is False for c in self.constraints):
            return False
        if i == len(self.vars):
            return True
        var = self.vars[i]
        for value in var.values:
            self.env[var.key] = value
            if self.run(i + 1):
                return True
        del self.env[var.key]
        return False


def satisfiable(space: Space, goals: Sequence[Goal], budget: int = BUDGET) -> bool | None:
    """True if some lead meets every goal, False if none can, None if the search gave up."""
    search = _Search(space, goals, budget)
    try:
        return search.run()
    except GiveUp:
        return None


def witness(space: Space, goals: Sequence[Goal], budget: int = BUDGET) -> dict[str, Any] | None:
    """Values (by engine key; absent ones left out) that meet every goal, or None."""
    search = _Search(space, goals, budget)
    try:
        found = search.run()
    except GiveUp:
        return None
    if not found:
        return None
    return {k: v for k, v in search.env.items() if v is not MISSING}
