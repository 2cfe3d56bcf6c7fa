"""Why a rule decided as it did: the values that decided it, and words in en or zh.

The engine says which rules fired; this module finds, for a decided rule, the atoms that
decided it (for ``a or b`` that is true: only the true branches). Each condition tree is
compiled once into nested closures, so explaining costs a few dict look-ups per atom.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any

from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook
from qualify.verdict import Evidence

# (fact, lead, state the engine decided) -> the evidence that decided it
Explainer = Callable[[Mapping[str, Any], Mapping[str, Any], bool | None], list[Evidence]]

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}

STATUS_TEXT = {
    "en": {"qualified": "qualified", "disqualified": "disqualified",
           "needs_discovery": "needs discovery"},
    "zh": {"qualified": "准客户", "disqualified": "不合格", "needs_discovery": "需进一步了解"},
}
STATE_TEXT = {
    "en": {"met": "met", "unmet": "unmet", "unknown": "unknown"},
    "zh": {"met": "满足", "unmet": "不满足", "unknown": "未知"},
}


def _reader(ref: Ref) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
    """How to show the value a ref read: the lead's own value for fields (dates as text)."""
    key, source = ref.key, ref.source or ref.key
    if ref.kind == "field" and ref.type == "date":
        return lambda fact, lead: lead[source].isoformat()
    if ref.kind == "field" and ref.type == "list":
        return lambda fact, lead: list(lead[source])
    return lambda fact, lead: fact[key]


class _Node:
    """A compiled condition: ``state`` decides it, ``collect`` gathers the deciding atoms.

    Explaining a rule whose state the engine already decided only walks into the branches
    that decided it, so evidence is built for those atoms alone.
    """

    __slots__ = ("collect", "state")

    def __init__(self, state: Callable[[Mapping[str, Any]], bool | None],
                 collect: Callable[[Mapping[str, Any], Mapping[str, Any], bool | None,
                                    list[Evidence]], None]) -> None:
        self.state = state
        self.collect = collect


def _compile(expr: Expr) -> _Node:
    if isinstance(expr, Const):
        value = expr.value
        return _Node(lambda fact: value, lambda fact, lead, st, out: None)
    if isinstance(expr, Known):
        key, name, show = expr.ref.key, expr.ref.name, _reader(expr.ref)

        def known_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                          out: list[Evidence]) -> None:
            if st:
                out.append({"field": name, "value": show(fact, lead), "test": "known",
                            "holds": True})
            else:
                out.append({"field": name, "value": None, "test": "not known", "holds": False})
        return _Node(lambda fact: key in fact, known_collect)
    if isinstance(expr, Cmp | In):
        key, name, show = expr.ref.key, expr.ref.name, _reader(expr.ref)
        if isinstance(expr, Cmp):
            op, literal = _CMP[expr.op], expr.value

            def test(v: Any) -> bool:
                return op(v, literal)

            yes, no = f"{expr.op} {expr.text}", f"{NEGATE[expr.op]} {expr.text}"
        else:
            values, negated = frozenset(expr.values), expr.negated

            def test(v: Any) -> bool:
                return (v in values) != negated

            inside, outside = f"in {expr.text}", f"not in {expr.text}"
            yes, no = (outside, inside) if negated else (inside, outside)
        missing = object()

        def atom_state(fact: Mapping[str, Any]) -> bool | None:
            v = fact.get(key, missing)
            return None if v is missing else test(v)

        def atom_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                         out: list[Evidence]) -> None:
            if st is not None:
                out.append({"field": name, "value": show(fact, lead),
                            "test": yes if st else no, "holds": st})
        return _Node(atom_state, atom_collect)
    if isinstance(expr, Not):
        inner = _compile(expr.item)
        inner_state, inner_collect = inner.state, inner.collect

        def not_state(fact: Mapping[str, Any]) -> bool | None:
            st = inner_state(fact)
            return None if st is None else not st

        def not_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                        out: list[Evidence]) -> None:
            inner_collect(fact, lead, None if st is None else not st, out)
        return _Node(not_state, not_collect)
    if isinstance(expr, And | Or):
        parts = tuple(_compile(i) for i in expr.items)
        settles = isinstance(expr, Or)  # the value that decides it alone: true for or

        def junction_state(fact: Mapping[str, Any]) -> bool | None:
            unknown = False
            for part in parts:
                st = part.state(fact)
                if st is settles:
                    return settles
                if st is None:
                    unknown = True
            return None if unknown else not settles

        def junction_collect(fact: Mapping[str, Any], lead: Mapping[str, Any],
                             st: bool | None, out: list[Evidence]) -> None:
            if st is None:
                return
            for part in parts:  # settled: the parts that settle it; else every part
                pst = part.state(fact)
                if pst is st:
                    part.collect(fact, lead, pst, out)
        return _Node(junction_state, junction_collect)
    raise TypeError(type(expr).__name__)  # pragma: no cover


def compile_explainer(expr: Expr) -> Explainer:
    """A function (fact, lead, state) -> the evidence for a state the engine decided."""
    node = _compile(expr)
    collect = node.collect

    def explain(fact: Mapping[str, Any], lead: Mapping[str, Any],
                state: bool | None) -> list[Evidence]:
        out: list[Evidence] = []
        collect(fact, lead, state, out)
        return out
    return explain


def decide(expr: Expr, fact: Mapping[str, Any]) -> bool | None:
    """Evaluate a condition three-valued on an engine fact (for tools; the engine uses
    durable-rules)."""
    return _compile(expr).state(fact)


def show_value(value: Any) -> str:
    t = type(value)
    if t is str:
        return f'"{value}"'
    if t is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class Words:
    """Field names, states and statuses in one locale."""

    def __init__(self, rulebook: Rulebook, locale: str) -> None:
        self.locale = locale
        self.sep = "、" if locale == "zh" else ", "
        self.colon = ":" if locale == "zh" else ": "
        self._labels = {n: f.label[locale] for n, f in rulebook.fields.items()}
        self.status = STATUS_TEXT[locale]
        self.state = STATE_TEXT[locale]
        self.missing_word = "缺少" if locale == "zh" else "missing"
        self._names: dict[str, str] = {}  # field or derived name -> its words, memoised

    def field(self, name: str) -> str:
        """A field (or a derived value such as count(x)) as this locale names it."""
        words = self._names.get(name)
        if words is None:
            words = self._names[name] = self._field(name)
        return words

    def _field(self, name: str) -> str:
        if self.locale == "en":
            return name
        if name in self._labels:
            return self._labels[name]
        head, sep, rest = name.partition("(")
        if not sep:
            return name
        arg, comma, tail = rest.partition(",")
        if comma:
            return f"{head}({self._labels.get(arg, arg)},{tail}"
        arg = arg.rstrip(")")
        return f"{head}({self._labels.get(arg, arg)})"

    def fields(self, names: list[str]) -> str:
        if self.locale == "en":
            return self.sep.join(names)
        return self.sep.join(self.field(n) for n in names)

    def evidence(self, items: list[Evidence]) -> str:
        out = []
        field = self.field
        for e in items:
            test = e["test"]
            if test == "known" or test == "not known":  # noqa: PLR1714 - faster than a tuple
                out.append(f"{field(e['field'])} {test}")
            else:
                out.append(f"{field(e['field'])} = {show_value(e['value'])} ({test})")
        return "; ".join(out)

    def missing(self, names: list[str]) -> str:
        return f"{self.missing_word} {self.fields(names)}"


PASSED_OVER = {
    "en": ("passed over (the first next step that applies wins): ", "false", "unknown",
           "a condition on a missing value is unknown, and a step applies only when its "
           "condition is true: to decide without the value, write 'not known(x) or not x' "
           "(apply it when x is missing) or 'known(x) and not x' (skip it)"),
    "zh": ("未采用的下一步(按顺序,第一个适用的胜出):", "不成立", "未知",
           "缺少数据时条件为未知,而下一步只在条件为真时适用:要在缺少数据时也能决定,可写 "
           "'not known(x) or not x'(缺少时适用)或 'known(x) and not x'(缺少时不适用)"),
}


def passed_over(rulebook: Rulebook, steps_fact: Mapping[str, Any], lead: Mapping[str, Any],
                chosen: str, locale: str) -> list[str]:
    """Why each next step above ``chosen`` did not apply: false, or unknown for lack of
    which fields (``steps_fact``: the fact next steps are matched on). Empty if none."""
    head, false, unknown, note = PASSED_OVER[locale]
    words = Words(rulebook, locale)
    unknowns: list[str] = []
    falses: list[str] = []
    for step in rulebook.next_steps:
        if step.id == chosen:
            break
        label = step.label.get(locale) or step.id
        if decide(step.expr, steps_fact) is None:
            missing = [s for s in step.sources if s not in lead]
            unknowns.append(f"{label} ({words.missing(missing)})")
        else:
            falses.append(label)
    parts = [f"{unknown}{words.colon}{'; '.join(unknowns)}"] if unknowns else []
    between = "、" if locale == "zh" else "; "  # labels may hold commas
    parts += [f"{false}{words.colon}{between.join(falses)}"] if falses else []
    if not parts:
        return []
    return [head + " · ".join(parts), *([f"  ({note})"] if unknowns else [])]
