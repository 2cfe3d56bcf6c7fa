"""Conditions back to text: as code (``budget > 10 and budget < 5``) or in words for people
(``Budget ≥ 10000 or Annual revenue ≥ 1000000``, ``预算 ≥ 10000 或 年营业额 ≥ 1000000``).
"""

from __future__ import annotations

from collections.abc import Mapping

from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.explain import STATE_TEXT, STATUS_TEXT
from qualify.rulebook import Rulebook

_SYMBOL = {"==": "=", "!=": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_WORDS = {
    "en": {"and": "and", "or": "or", "not": "not", "known": "{} is known",
           "unknown": "{} is unknown", "in": "{} is one of {}", "not in": "{} is none of {}",
           "count": "number of {}", "days_since": "days since {}", "contains": "{} includes {}",
           "matches": "{} matches {}", "trait": "{} fired", "status": "status",
           "grade": "grade", "score": "score", "false": "{} is false", "always": "always",
           "never": "never", "is": "{} is {}", "is not": "{} is not {}", "sep": ", "},
    "zh": {"and": "且", "or": "或", "not": "非", "known": "已知{}", "unknown": "未知{}",
           "in": "{}属于{}", "not in": "{}不属于{}", "count": "{}数量", "days_since": "距{}天数",
           "contains": "{}包含{}", "matches": "{}匹配{}", "trait": "具备特质“{}”",
           "status": "状态", "grade": "评级", "score": "得分", "false": "{}为否",
           "always": "总是", "never": "从不", "is": "{}为{}", "is not": "{}不为{}",
           "sep": "、"},
}


def code(expr: Expr) -> str:
    """The condition as an author would write it (canonical spacing and parentheses)."""
    return _Code().show(expr)


def words(expr: Expr, rulebook: Rulebook, locale: str) -> str:
    """The condition in words for the sales team, with field and rule labels."""
    return _Words(rulebook, locale).show(expr)


class _Code:
    def show(self, expr: Expr, parent: type[Expr] | None = None) -> str:
        if isinstance(expr, And | Or):
            joiner = f" {self.word('and' if isinstance(expr, And) else 'or')} "
            text = joiner.join(self.show(i, type(expr)) for i in expr.items)
            return f"({text})" if parent in (And, Or, Not) and parent is not type(expr) \
                else text
        if isinstance(expr, Not):
            return self.negate(expr.item)
        if isinstance(expr, Const):
            return self.const(expr.value)
        if isinstance(expr, Known):
            return self.known(expr.ref)
        if isinstance(expr, In):
            return self.member(expr)
        if isinstance(expr, Cmp):
            return self.compare(expr)
        raise TypeError(type(expr).__name__)  # pragma: no cover

    def word(self, name: str) -> str:
        return name

    def const(self, value: bool) -> str:
        return "true" if value else "false"

    def negate(self, item: Expr) -> str:
        return f"not {self.show(item, Not)}"

    def known(self, ref: Ref) -> str:
        return f"known({ref.name})"

    def member(self, expr: In) -> str:
        return f"{expr.ref.name} {'not in' if expr.negated else 'in'} {expr.text}"

    def compare(self, expr: Cmp) -> str:
        if expr.ref.type == "boolean" and expr.op == "==" and expr.value is True:
            return expr.ref.name
        return f"{expr.ref.name} {expr.op} {expr.text}"


class _Words(_Code):
    def __init__(self, rulebook: Rulebook, locale: str) -> None:
        self.rb = rulebook
        self.loc = locale
        self.w: Mapping[str, str] = _WORDS[locale]
        self.rule_labels = {r.id: r.label[locale] for r in rulebook.rules}

    def word(self, name: str) -> str:
        return self.w[name]

    def const(self, value: bool) -> str:
        return self.w["always" if value else "never"]

    def negate(self, item: Expr) -> str:
        # Kleene: "not (x op c)" is "x op' c" and "not x in [..]" is "x not in [..]"
        if isinstance(item, Known):
            return self.w["unknown"].format(self.name(item.ref))
        if isinstance(item, Cmp):
            return self.compare(Cmp(item.ref, NEGATE[item.op], item.value, item.text))
        if isinstance(item, In):
            return self.member(In(item.ref, item.values, not item.negated, item.text))
        sep = "" if self.loc == "zh" else " "
        return f"{self.w['not']}{sep}{self.show(item, Not)}"

    def known(self, ref: Ref) -> str:
        return self.w["known"].format(self.name(ref))

    def member(self, expr: In) -> str:
        values = self.w["sep"].join(self.value(expr.ref, v) for v in expr.values)
        return self.w["not in" if expr.negated else "in"].format(self.name(expr.ref), values)

    def compare(self, expr: Cmp) -> str:
        ref = expr.ref
        if ref.type == "boolean" and expr.op in ("==", "!="):
            text = self.name(ref)
            holds = (expr.op == "==") == (expr.value is True)
            return text if holds else self.w["false"].format(text)
        value = self.value(ref, expr.value, expr.text)
        if ref.type in ("enum", "string") and expr.op in ("==", "!="):
            return self.w["is" if expr.op == "==" else "is not"].format(self.name(ref), value)
        return f"{self.name(ref)} {_SYMBOL[expr.op]} {value}"

    def value(self, ref: Ref, value: object, text: str | None = None) -> str:
        if ref.name.startswith("qualifier.") and isinstance(value, str):
            return STATE_TEXT[self.loc].get(value, value)
        if ref.name == "status" and isinstance(value, str):
            return STATUS_TEXT[self.loc].get(value, value)
        if ref.type == "date" and text:
            return text.strip('"')
        if isinstance(value, str):
            return value if ref.kind == "verdict" else f"“{value}”"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def name(self, ref: Ref) -> str:
        spec = self.rb.fields.get(ref.source or "")
        if ref.kind == "field" and spec:
            return spec.label[self.loc]
        if ref.kind == "derived" and spec:
            label = spec.label[self.loc]
            if ref.func in ("count", "days_since"):
                return self.w[ref.func].format(label)
            return self.w[ref.func or "matches"].format(label, f"“{ref.arg}”")
        head, _, tail = ref.name.partition(".")
        if head == "qualifier":
            return f"“{self.rule_labels.get(tail, tail)}”"
        if head == "trait":
            return self.w["trait"].format(self.rule_labels.get(tail, tail))
        return self.w.get(ref.name, ref.name)
