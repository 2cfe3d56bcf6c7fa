"""Conditions back to text: as code (``budget > 10 and budget < 5``) or in words for people
(``Budget at least USD 10,000 or annual revenue at least USD 1,000,000``; the words are
``words.py``'s, as explanations say them).
"""

from __future__ import annotations

from typing import assert_never

from qualify.conditions import And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook
from qualify.words import Words


def code(expr: Expr) -> str:
    """The condition as an author would write it (canonical spacing and parentheses)."""
    return _Code().show(expr)


def words(expr: Expr, rulebook: Rulebook, locale: str) -> str:
    """The condition in words for the sales team, with field and rule labels."""
    return Words(rulebook, locale).condition(expr)


class _Code:
    def show(self, expr: Expr, parent: type[Expr] | None = None) -> str:
        match expr:
            case And() | Or():
                joiner = f" {self.word('and' if isinstance(expr, And) else 'or')} "
                text = joiner.join(self.show(i, type(expr)) for i in expr.items)
                nested = parent in (And, Or, Not) and parent is not type(expr)
                return f"({text})" if nested else text
            case Not():
                return self.negate(expr.item)
            case Const():
                return self.const(expr.value)
            case Known():
                return self.known(expr.ref)
            case In():
                return self.member(expr)
            case Cmp():
                return self.compare(expr)
            case _:
                assert_never(expr)

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
