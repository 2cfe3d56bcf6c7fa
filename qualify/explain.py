"""Why a rule decided as it did: the values that decided it, and human lines in en or zh.

The engine says which rules fired; this module finds, for a decided rule, the atoms that
decided it (for ``a or b`` that is true, only the true branches) and the missing fields that
left an undecided rule unknown. It walks the same condition tree the compiler compiled.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any

from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook

Atom = tuple[str, Any, str, bool]  # field, value, test, holds
Decision = tuple[bool | None, list[Atom], list[str]]  # state, evidence, missing fields

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
MISSING_TEXT = {"en": "missing", "zh": "缺少"}
SEP = {"en": ", ", "zh": "、"}


def display(ref: Ref, fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Any:
    """The value a ref read, as a person would write it."""
    if ref.kind == "field" and ref.source in lead:
        v = lead[ref.source]
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, tuple):
            return list(v)
        return v
    return fact.get(ref.key)


def decide(expr: Expr, fact: Mapping[str, Any], lead: Mapping[str, Any]) -> Decision:
    """Evaluate ``expr`` three-valued on an engine fact; keep the deciding atoms."""
    if isinstance(expr, Const):
        return expr.value, [], []
    if isinstance(expr, Cmp | In | Known):
        ref = expr.ref
        if isinstance(expr, Known):
            present = ref.key in fact
            return present, [(ref.name, display(ref, fact, lead), "known", present)], []
        if ref.key not in fact:
            return None, [], [ref.source] if ref.source else []
        v = fact[ref.key]
        if isinstance(expr, Cmp):  # the test the value passed: the rule's, or its negation
            holds = _CMP[expr.op](v, expr.value)
            test = f"{expr.op if holds else NEGATE[expr.op]} {expr.text}"
        else:
            holds = (v in expr.values) != expr.negated
            inside = holds != expr.negated
            test = f"{'in' if inside else 'not in'} {expr.text}"
        return holds, [(ref.name, display(ref, fact, lead), test, holds)], []
    if isinstance(expr, Not):
        state, ev, missing = decide(expr.item, fact, lead)
        return (None if state is None else not state), ev, missing
    if isinstance(expr, And | Or):
        deciding = isinstance(expr, Or)  # the value that settles it: true for or
        parts = [decide(i, fact, lead) for i in expr.items]
        settled = [p for p in parts if p[0] is deciding]
        if settled:
            return deciding, [a for p in settled for a in p[1]], []
        unknown = [p for p in parts if p[0] is None]
        if unknown:
            missing = list(dict.fromkeys(m for p in unknown for m in p[2]))
            return None, [], missing
        return (not deciding), [a for p in parts for a in p[1]], []
    raise TypeError(type(expr).__name__)  # pragma: no cover


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class Words:
    """Field and rule names in one locale."""

    def __init__(self, rulebook: Rulebook, locale: str) -> None:
        self.locale = locale
        self.rulebook = rulebook
        self.field_labels = {n: f.label[locale] for n, f in rulebook.fields.items()}

    def field(self, name: str) -> str:
        """A field (or a derived value such as count(x)) as this locale names it."""
        if self.locale == "en":
            return name
        if name in self.field_labels:
            return self.field_labels[name]
        head, sep, rest = name.partition("(")
        if sep:
            arg, comma, tail = rest.partition(",")
            arg = arg.rstrip(")")
            label = self.field_labels.get(arg, arg)
            return f"{head}({label}{comma}{tail}" if comma else f"{head}({label})"
        return name

    def fields(self, names: list[str]) -> str:
        return SEP[self.locale].join(self.field(n) for n in names)

    def atom(self, atom: Atom) -> str:
        name, value, test, _ = atom
        if test == "known":
            return f"{self.field(name)} {show_value(value)}" if value is not None \
                else f"{self.field(name)} ?"
        return f"{self.field(name)} = {show_value(value)} ({test})"

    def atoms(self, atoms: list[Atom]) -> str:
        return "; ".join(self.atom(a) for a in atoms)

    def status(self, status: str) -> str:
        return STATUS_TEXT[self.locale][status]

    def state(self, state: str) -> str:
        return STATE_TEXT[self.locale][state]

    def missing(self, names: list[str]) -> str:
        return f"{MISSING_TEXT[self.locale]} {self.fields(names)}"
