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

# state (True, False, None = unknown) and the evidence that decided it
Decided = tuple[bool | None, list[Evidence]]
Explainer = Callable[[Mapping[str, Any], Mapping[str, Any]], Decided]

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
_NONE: list[Evidence] = []

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
    key, source = ref.key, ref.source
    if ref.kind == "field" and ref.type == "date":
        return lambda fact, lead: lead[source].isoformat()
    if ref.kind == "field" and ref.type == "list":
        return lambda fact, lead: list(lead[source])
    return lambda fact, lead: fact[key]


def compile_explainer(expr: Expr) -> Explainer:
    """A function (fact, lead) -> (state, evidence), three-valued, for one condition."""
    if isinstance(expr, Const):
        value = expr.value
        return lambda fact, lead: (value, _NONE)
    if isinstance(expr, Known):
        key, name, show = expr.ref.key, expr.ref.name, _reader(expr.ref)

        def known(fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Decided:
            if key in fact:
                return True, [{"field": name, "value": show(fact, lead), "test": "known",
                               "holds": True}]
            return False, [{"field": name, "value": None, "test": "not known",
                            "holds": False}]
        return known
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

        def atom(fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Decided:
            v = fact.get(key, fact)  # the fact itself marks "missing"
            if v is fact:
                return None, _NONE
            holds = test(v)
            return holds, [{"field": name, "value": show(fact, lead),
                            "test": yes if holds else no, "holds": holds}]
        return atom
    if isinstance(expr, Not):
        inner = compile_explainer(expr.item)

        def negation(fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Decided:
            state, ev = inner(fact, lead)
            return (None if state is None else not state), ev
        return negation
    if isinstance(expr, And | Or):
        parts = [compile_explainer(i) for i in expr.items]
        settles = isinstance(expr, Or)  # the value that decides it alone: true for or

        def junction(fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Decided:
            deciding: list[Evidence] = []
            others: list[Evidence] = []
            unknown = False
            for part in parts:
                state, ev = part(fact, lead)
                if state is settles:
                    deciding += ev
                elif state is None:
                    unknown = True
                else:
                    others += ev
            if deciding:
                return settles, deciding
            if unknown:
                return None, _NONE
            return (not settles), others
        return junction
    raise TypeError(type(expr).__name__)  # pragma: no cover


def show_value(value: Any) -> str:
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

    def field(self, name: str) -> str:
        """A field (or a derived value such as count(x)) as this locale names it."""
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
        for e in items:
            if e["test"] in ("known", "not known"):
                out.append(f"{self.field(e['field'])} {e['test']}")
            else:
                out.append(f"{self.field(e['field'])} = {show_value(e['value'])} ({e['test']})")
        return "; ".join(out)

    def missing(self, names: list[str]) -> str:
        return f"{self.missing_word} {self.fields(names)}"
