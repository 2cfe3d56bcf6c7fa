"""Can a condition ever hold? A search over the few values that matter for each variable.

A condition reads variables (lead fields, derived values such as ``count(x)``, and for next
steps the verdict so far). For a numeric variable, only its position relative to the
constants it is compared with matters, so one value per gap between those constants (and
each constant itself) stands for all; an enum contributes its values, a string the constants
it is compared with plus one other text, and any variable that may be absent also "missing".
Each goal (a condition and the outcomes wanted of it: true, false, unknown, three-valued as
Kleene logic says) becomes a union of *boxes*, a box giving each variable a set of values.
A depth-first search then picks one box per goal, keeping their intersection non-empty;
it checks every other goal ahead (forward checking), takes the goal with the fewest boxes
left first, and splits goals that share no variable into separate searches. Over these
values the answer is exact: some assignment meets every goal, or none does.

Sound for warnings: variables are treated as independent except for facts that always hold
(the status follows from the qualifiers, the grade from the score, a derived value exists
when its field does), so the search admits *more* leads than exist. "No lead can" is
therefore never said falsely. A search over its node budget answers "don't know" (``None``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from qualify.conditions import STATES, STATUSES, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.errors import QualifyError
from qualify.leads import MAX_ITEMS
from qualify.rulebook import Rulebook

T, F, U = 1, 2, 4  # outcome bits: true, false, unknown
NOT_TRUE = F | U
BUDGET = 20_000  # search nodes per question


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
Goal = tuple[Expr, int]  # a condition and the outcomes wanted (bits)


class GiveUp(QualifyError):
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


Gathered = tuple[dict[str, list[Ref]], dict[str, list[Any]]]  # refs and constants by key


class Space:
    """The variables of one rule base's conditions and the values worth trying for each.

    Values are chosen from the constants of *every* condition of the rule base, so each
    condition's boxes are computed once and shared by all the questions asked about it.
    """

    def __init__(self, rulebook: Rulebook, *, bounded: bool = True) -> None:
        self.rb = rulebook
        self.bounded = bounded  # False: ignore the fields' min and max (to tell if they matter)
        lo = rulebook.score_base + sum(min(t.points, 0) for t in rulebook.traits)
        hi = rulebook.score_base + sum(max(t.points, 0) for t in rulebook.traits)
        lo, hi = (min(max(s, rulebook.score_min), rulebook.score_max) for s in (lo, hi))
        self.score_range = (lo, hi)
        self.grades = tuple(dict.fromkeys(rulebook.grade_for(s).id for s in
                                          range(self.score_range[0], self.score_range[1] + 1)))
        self.refs, consts = self.gather([r.expr for r in rulebook.rules], every_verdict=True)
        self.consts = {k: set(v) for k, v in consts.items()}
        self.shared: dict[str, _Var] = {}
        self.boxes = _Boxes({})

    def gather(self, exprs: Iterable[Expr], every_verdict: bool = False) -> Gathered:
        refs: dict[str, list[Ref]] = {}
        consts: dict[str, list[Any]] = {}
        for expr in exprs:
            for atom in _atoms(expr):
                key = atom.ref.key
                refs.setdefault(key, []).append(atom.ref)
                c = consts.setdefault(key, [])
                if isinstance(atom, Cmp):
                    c.append(atom.value)
                elif isinstance(atom, In):
                    c.extend(atom.values)
        if "__status" in refs or every_verdict:  # the status is a function of every qualifier
            for q in self.rb.qualifiers:
                refs.setdefault(f"__q_{q.id}", [Ref("verdict", f"qualifier.{q.id}",
                                                    f"__q_{q.id}", "enum", STATES)])
            refs.setdefault("__status", [Ref("verdict", "status", "__status", "enum",
                                             STATUSES)])
        if "__grade" in refs or every_verdict:  # and the grade follows from the score
            refs.setdefault("__grade", [Ref("verdict", "grade", "__grade", "enum")])
            refs.setdefault("__score", [Ref("verdict", "score", "__score", "integer")])
            consts.setdefault("__score", []).extend(g.min_score for g in self.rb.grades)
        return refs, consts

    def variables(self, exprs: Sequence[Expr]) -> tuple[list[_Var], bool]:
        """The variables ``exprs`` read (and those tied to them), and whether all of them have
        the rule base's shared values (so cached boxes apply)."""
        refs, consts = self.gather(exprs)
        out, shared = [], True
        for key in refs:
            if key in self.refs and self.consts.get(key, set()).issuperset(consts.get(key, ())):
                if key not in self.shared:
                    var = self.variable(key, self.refs[key], sorted(self.consts.get(key, ()),
                                                                    key=repr))
                    self.shared[key] = var
                    self.boxes.values[key] = var.values
                out.append(self.shared[key])
            else:  # a condition from outside the rule base, with constants of its own
                out.append(self.variable(key, refs[key], consts.get(key, [])))
                shared = False
        return out, shared

    def variable(self, key: str, refs: list[Ref], consts: list[Any]) -> _Var:
        ref = refs[0]
        if ref.kind == "verdict":
            values: tuple[Any, ...] = self.verdict_values(key, consts)
            return _Var(key, values)
        funcs = {r.func for r in refs}
        spec = self.rb.fields.get(ref.source or "")
        if "count" in funcs or any(r.type == "list" for r in refs):
            values = tuple(sorted(_integer_points(consts, 0, MAX_ITEMS)))
        elif ref.kind == "derived" and ref.func == "days_since":
            values = tuple(sorted(_integer_points(consts, -math.inf, math.inf)))
        elif ref.type == "boolean":
            values = (True, False)
        elif ref.type == "enum":
            values = ref.values
        elif ref.type == "string":
            values = (*dict.fromkeys(consts), "\0other")
        elif ref.type == "date":
            values = tuple(sorted(_integer_points(consts, 1, dt.date.max.toordinal())))
        else:
            lo = spec.min if spec and spec.min is not None and self.bounded else -math.inf
            hi = spec.max if spec and spec.max is not None and self.bounded else math.inf
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

    # -- facts that always hold, as goals over the verdict variables
    def constraints(self, variables: Sequence[_Var]) -> list[list[Box]]:
        dom = {v.key: v.values for v in variables}

        def bit(key: str, value: Any) -> int:
            return 1 << dom[key].index(value)

        out: list[list[Box]] = []
        if "__status" in dom:  # the status follows from the qualifiers
            qs = [f"__q_{q.id}" for q in self.rb.qualifiers]
            met, unmet, unknown = (bit("__status", s) for s in STATUSES)
            boxes: list[Box] = [{"__status": met, **{q: bit(q, "met") for q in qs}}]
            for q in qs:
                boxes.append({"__status": unmet, q: bit(q, "unmet")})
                boxes.append({"__status": unknown, q: bit(q, "unknown"),
                              **{o: bit(o, "met") | bit(o, "unknown") for o in qs if o != q}})
            out.append(boxes)
        if "__grade" in dom:  # the grade follows from the score
            by_grade: dict[str, int] = {}
            for i, score in enumerate(dom["__score"]):
                g = self.rb.grade_for(score).id
                by_grade[g] = by_grade.get(g, 0) | 1 << i
            out.append([{"__grade": bit("__grade", g), "__score": m}
                        for g, m in by_grade.items() if g in dom["__grade"]])
        for v in variables:  # a derived value exists exactly when its field does
            if v.source in dom and MISSING in v.values:
                full = (1 << len(v.values)) - 1
                here, src = bit(v.key, MISSING), dom[v.source]
                if MISSING in src:
                    gone = 1 << src.index(MISSING)
                    out.append([{v.key: here, v.source: gone},
                                {v.key: full & ~here, v.source: ((1 << len(src)) - 1) & ~gone}])
                else:
                    out.append([{v.key: full & ~here}])
        return out


# op -> (where a value splits the sorted values, whether the part below is where it holds)
_BISECT: dict[str, tuple[Callable[[Sequence[Any], Any], int], bool]] = {
    "<": (bisect.bisect_left, True), "<=": (bisect.bisect_right, True),
    ">": (bisect.bisect_right, False), ">=": (bisect.bisect_left, False)}
Box = dict[str, int]  # variable -> bitmask of the indexes of its allowed values (absent: any)
MAX_BOXES = 5_000  # per goal; a condition whose expansion is larger is not analysed


def _meet(a: Box, b: Box) -> Box | None:
    """The intersection of two boxes, or None if empty."""
    if len(a) > len(b):
        a, b = b, a
    out = dict(b)
    for k, m in a.items():
        both = m & out[k] if k in out else m
        if not both:
            return None
        out[k] = both
    return out


def _within(b: Box, c: Box) -> bool:
    """Every value b allows, c allows."""
    return all(k in b and not b[k] & ~m for k, m in c.items())


def _simplify(boxes: list[Box]) -> list[Box]:
    unique = list({tuple(sorted(b.items())): b for b in boxes}.values())
    if len(unique) > 64:
        return unique
    return [b for i, b in enumerate(unique)
            if not any(j != i and _within(b, c) and not (_within(c, b) and j > i)
                       for j, c in enumerate(unique))]


class _Boxes:
    """Conditions as unions of boxes, over the values of each variable (by key)."""

    def __init__(self, values: dict[str, tuple[Any, ...]]) -> None:
        self.values = values
        self.memo: dict[tuple[int, int], tuple[Expr, list[Box] | None]] = {}
        self.ladders: dict[str, tuple[Any, ...]] = {}  # sorted numeric values, by key

    def want(self, expr: Expr, mask: int) -> list[Box]:
        return self.cached(expr, -mask, lambda: _simplify(
            [b for o in (T, F, U) if mask & o for b in self.of(expr, o)]))

    def of(self, expr: Expr, o: int) -> list[Box]:
        return self.cached(expr, o, lambda: self._of(expr, o))

    def cached(self, expr: Expr, tag: int, make: Callable[[], list[Box]]) -> list[Box]:
        key = (id(expr), tag)  # the entry keeps expr alive, so its id is not reused
        hit = self.memo.get(key)
        if hit is None or hit[0] is not expr:
            try:
                hit = expr, make()
            except GiveUp:
                hit = expr, None  # too big once, too big every time
            self.memo[key] = hit
        if hit[1] is None:
            raise GiveUp
        return hit[1]

    def product(self, lists: Iterable[list[Box]]) -> list[Box]:
        acc: list[Box] = [{}]
        for boxes in lists:
            acc = [m for a in acc for b in boxes if (m := _meet(a, b)) is not None]
            if len(acc) > MAX_BOXES:
                raise GiveUp
            acc = _simplify(acc)
            if not acc:
                break
        return acc

    def ordered(self, atom: Cmp | In | Known, o: int) -> int | None:
        """The mask of a comparison by order over sorted numbers, by bisection (a variable
        of a large rule base has thousands of values); None where that does not apply."""
        if not isinstance(atom, Cmp) or atom.op not in _BISECT:
            return None
        values = self.values[atom.ref.key]
        known = len(values) - (1 if values and values[-1] is MISSING else 0)
        if o == U:
            return 1 << known if known < len(values) else 0
        ladder = self.ladders.get(atom.ref.key)
        if ladder is None:
            ladder = values[:known]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ladder) \
                    or any(a > b for a, b in itertools.pairwise(ladder)):
                ladder = ()  # not sorted numbers: count one by one
            self.ladders[atom.ref.key] = ladder
        if not ladder or isinstance(atom.value, bool) \
                or not isinstance(atom.value, int | float):
            return None
        cut, below_true = _BISECT[atom.op]
        at = cut(ladder, atom.value)
        low, high = (0, at) if below_true == (o == T) else (at, known)
        return ((1 << high) - 1) & ~((1 << low) - 1)

    def _of(self, expr: Expr, o: int) -> list[Box]:
        match expr:
            case Const():
                return [{}] if (T if expr.value else F) == o else []
            case Cmp() | In() | Known():
                k = expr.ref.key
                values = self.values[k]
                mask = self.ordered(expr, o)
                if mask is None:
                    mask = sum(1 << i for i, v in enumerate(values)
                               if _atom_outcome(expr, v) == o)
                return [] if not mask else [{}] if mask == (1 << len(values)) - 1 \
                    else [{k: mask}]
            case Not():
                return self.of(expr.item, {T: F, F: T, U: U}[o])
            case And() | Or():
                settles, other = (F, T) if isinstance(expr, And) else (T, F)
                items = expr.items
                if o == settles:  # one item settles it
                    return _simplify([b for i in items for b in self.of(i, o)])
                if o == other:  # every item agrees
                    return self.product(self.of(i, o) for i in items)
                # unknown: no item settles it, and some item is unknown
                return _simplify([b for n, i in enumerate(items) for b in self.product(
                    [self.of(i, U), *(self.want(j, other | U) for m, j in enumerate(items)
                                      if m != n)])])
            case _:
                assert_never(expr)


Live = tuple[frozenset[str], list[Box]]  # a goal: the variables it reads, its boxes


class _Search:
    def __init__(self, space: Space, goals: Sequence[Goal], budget: int) -> None:
        self.vars, shared = space.variables([e for e, _ in goals])
        boxes = space.boxes if shared else _Boxes({v.key: v.values for v in self.vars})
        self.goals = [_live(boxes.want(e, want)) for e, want in goals]
        self.goals += [_live(c) for c in space.constraints(self.vars)]
        self.nodes = 0
        self.budget = budget

    def run(self) -> Box | None:
        return self.solve(self.goals, {})

    def solve(self, goals: list[Live], current: Box) -> Box | None:
        self.nodes += 1
        if self.nodes > self.budget:
            raise GiveUp
        live: list[Live] = []
        for keys, goal in goals:  # forward checking: every goal must stay possible
            left: list[Box] = []
            for b in goal:
                m = _meet(current, b)
                if m is None:
                    continue
                if m == current:  # the goal holds whatever else is chosen
                    left = []
                    break
                left.append(m)
            else:
                if not left:
                    return None
                live.append((keys, left))
        if not live:
            return current
        parts = _components(live, current) if len(live) > 2 else [live]
        if len(parts) == 1:
            return self.branch(live)
        found = current  # goals sharing no open variable are solved apart
        for part in parts:
            sub = self.solve(part, current)
            if sub is None:
                return None
            merged = _meet(found, sub)
            if merged is None:  # pragma: no cover - disjoint parts always meet
                return self.branch(live)
            found = merged
        return found

    def branch(self, live: list[Live]) -> Box | None:
        live.sort(key=lambda g: len(g[1]))
        (_, first), rest = live[0], live[1:]
        for b in first:
            found = self.solve(rest, b)
            if found is not None:
                return found
        return None


def _live(boxes: list[Box]) -> Live:
    return frozenset(k for b in boxes for k in b), boxes


def _components(goals: list[Live], current: Box) -> list[list[Live]]:
    """Goals grouped by the variables still open, connected through shared ones."""
    fixed = {k for k, m in current.items() if not m & (m - 1)}  # one value left
    groups: list[tuple[set[str], list[Live]]] = []
    for goal in goals:
        keys = goal[0] - fixed
        joined = [g for g in groups if g[0] & keys]
        merged: tuple[set[str], list[Live]] = (set(keys), [goal])
        for g in joined:
            merged[0].update(g[0])
            merged[1].extend(g[1])
            groups.remove(g)
        groups.append(merged)
    return [g[1] for g in groups]


def satisfiable(space: Space, goals: Sequence[Goal], budget: int = BUDGET) -> bool | None:
    """True if some lead meets every goal, False if none can, None if the search gave up."""
    try:
        return _Search(space, goals, budget).run() is not None
    except GiveUp:
        return None


def witness(space: Space, goals: Sequence[Goal], budget: int = BUDGET) -> dict[str, Any] | None:
    """Values (by engine key; absent ones left out) that meet every goal, or None."""
    try:
        search = _Search(space, goals, budget)
        box = search.run()
    except GiveUp:
        return None
    if box is None:
        return None
    out = {}
    for var in search.vars:
        mask = box.get(var.key, 1)
        value = var.values[(mask & -mask).bit_length() - 1]
        if value is not MISSING:
            out[var.key] = value
    return out


class Region:
    """Where one condition of the rule base comes out true, as boxes over the shared values:
    quick, solver-free tests between conditions (constraints ignored, so each test is only
    ever sure in one direction, as its name says)."""

    def __init__(self, space: Space, expr: Expr) -> None:
        space.variables([expr])  # registers its variables' shared values
        try:
            self.boxes: list[Box] | None = space.boxes.want(expr, T)
        except GiveUp:
            self.boxes = None  # too large to tell: every test answers "maybe"

    def surely_within(self, other: Region) -> bool:
        """True only if every lead this condition holds for, ``other`` holds for too."""
        if self.boxes is None or other.boxes is None:
            return False
        return all(any(_within(b, c) for c in other.boxes) for b in self.boxes)

    def surely_apart(self, other: Region) -> bool:
        """True only if no lead makes both conditions true."""
        if self.boxes is None or other.boxes is None:
            return False
        return all(_meet(b, c) is None for b in self.boxes for c in other.boxes)
