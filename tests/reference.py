"""A reference evaluator of the condition language that reads the condition text itself.

Written from the README's description of the language, not from ``qualify/conditions.py``:
its own tokenizer, its own recursive-descent parser and its own three-valued (Kleene)
evaluator over a typed lead (None is unknown). It imports nothing of qualify's parser or
compiler (``tests/test_reference.py`` checks that), so a slip in the parser, such as
``5 < n`` read as ``n < 5``, cannot hide in both (issue 16). Clarity over speed.

The grammar, with Python's precedence (which the language borrows):

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (op operand)*      a < b <= c means (a < b) and (b <= c)
    op         := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    operand    := number | "-" number | string | "true" | "false" | "[" operand, ... "]"
                | name | name "." name | name "(" operand, ... ")" | "(" condition ")"

A comparison sets a field (or a function's value, or a verdict value) against a literal,
on either side; the literal is read as the other side's type (a date field's "2025-01-01"
is a date). A missing value makes any test on it unknown; ``known(f)`` is never unknown.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import re2

if TYPE_CHECKING:
    from qualify.rulebook import Rulebook

Lead = Mapping[str, Any]
Schema = Mapping[str, str]  # field name -> type: number, integer, date, enum, ...
Truth = bool | None  # None: unknown


class LanguageError(ValueError):
    """A condition the reference cannot read or type; the message says where."""


# ----------------------------------------------------------------------------- tokens

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[^\W\d]\w*)
  | (?P<op>==|!=|<=|>=|<|>|[()\[\],.-])
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_UNICODE_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)",
                             re.DOTALL)
KEYWORDS = ("and", "or", "not", "in", "true", "false")


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    at: int  # offset in the condition


def tokenize(text: str) -> list[Token]:
    """The condition's tokens, then an ``end`` token. Raises LanguageError."""
    tokens, at = [], 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            raise LanguageError(f"column {at + 1}: cannot read {text[at:at + 10]!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, m.group(), at))
        at = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(token: str) -> str:
    """The text a quoted literal stands for: Python's common escapes, others kept."""
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, "\\" + code)
    return _UNICODE_ESCAPE.sub(one, token[1:-1])


def _number(token: str) -> int | float:
    return float(token) if any(c in token for c in ".eE") else int(token)


# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Lit:
    value: Any  # int, float, str or bool


@dataclass(frozen=True)
class Name:
    name: str  # a field, or a verdict value: grade, qualifier.need, trait.urgent_need


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Chain:
    """``a op b op c ...``: every link must hold."""

    operands: tuple[Node, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


Node = Lit | Name | Call | ListOf | Chain | Not | AllOf | AnyOf
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    """Recursive descent over the tokens, one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def at(self, kind: str, text: str | None = None, ahead: int = 0) -> bool:
        t = self.peek(ahead)
        return t.kind == kind and (text is None or t.text == text)

    def take(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, kind: str, text: str | None = None) -> Token:
        if not self.at(kind, text):
            raise self.error(f"expected {text or kind}")
        return self.take()

    def error(self, what: str) -> LanguageError:
        t = self.peek()
        return LanguageError(f"column {t.at + 1}: {what}, got {t.text or 'the end'!r} "
                             f"in {self.text!r}")

    def condition(self) -> Node:
        node = self.any_of()
        self.expect("end")
        return node

    def any_of(self) -> Node:
        items = [self.all_of()]
        while self.at("name", "or"):
            self.take()
            items.append(self.all_of())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def all_of(self) -> Node:
        items = [self.negation()]
        while self.at("name", "and"):
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def negation(self) -> Node:
        if self.at("name", "not"):
            self.take()
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        operands, ops = [self.operand()], []
        while True:
            if (self.at("op") and self.peek().text in COMPARISONS) or self.at("name", "in"):
                ops.append(self.take().text)
            elif self.at("name", "not") and self.at("name", "in", ahead=1):
                self.take()
                self.take()
                ops.append("not in")
            else:
                break
            operands.append(self.operand())
        return operands[0] if not ops else Chain(tuple(operands), tuple(ops))

    def operand(self) -> Node:
        t = self.peek()
        if t.kind == "number":
            return Lit(_number(self.take().text))
        if t.kind == "string":
            return Lit(_unquote(self.take().text))
        if t.kind == "op" and t.text == "-":
            self.take()
            return Lit(-_number(self.expect("number").text))
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.any_of()
            self.expect("op", ")")
            return inner
        if t.kind == "op" and t.text == "[":
            self.take()
            return ListOf(self.items("]"))
        if t.kind == "name" and t.text in ("true", "false"):
            return Lit(self.take().text == "true")
        if t.kind == "name" and t.text not in KEYWORDS:
            name = self.take().text
            if self.at("op", "."):
                self.take()
                return Name(f"{name}.{self.expect('name').text}")
            if self.at("op", "("):
                self.take()
                return Call(name, self.items(")"))
            return Name(name)
        raise self.error("expected a value, a field or a parenthesis")

    def items(self, close: str) -> tuple[Node, ...]:
        """Operands separated by commas up to ``close`` (a trailing comma is fine)."""
        out: list[Node] = []
        while not self.at("op", close):
            out.append(self.operand())
            if not self.at("op", close):
                self.expect("op", ",")
        self.take()
        return tuple(out)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """The reference's own reading of a condition (newlines are spaces, as folded YAML)."""
    return _Parser(text.replace("\n", " ").strip()).condition()


# ----------------------------------------------------------------------------- values

FUNCTIONS: dict[str, tuple[str, ...]] = {  # name -> the field types its first argument takes
    "known": ("string", "number", "integer", "boolean", "date", "enum", "list"),
    "count": ("list",), "contains": ("list",), "days_since": ("date",),
    "matches": ("string", "enum"),
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ORDERED = ("number", "integer", "date")


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> Any:
    return re2.compile(text)


def verdict_type(name: str) -> str:
    """The type of a verdict value a next step reads."""
    if name.startswith("trait."):
        return "boolean"
    return "integer" if name == "score" else "enum"


@dataclass(frozen=True)
class _Scope:
    lead: Lead
    as_of: dt.date
    schema: Schema
    verdict: Mapping[str, Any]

    def name(self, name: str) -> tuple[Any, str]:
        """A field's value and type (None if missing), else a verdict value and type."""
        if name in self.schema:
            return self.lead.get(name), self.schema[name]
        if name in self.verdict:
            return self.verdict[name], verdict_type(name)
        raise LanguageError(f"unknown name '{name}'")

    def call(self, call: Call) -> tuple[Any, str]:
        """A function's value and type; None if its field is missing."""
        if call.func not in FUNCTIONS:
            raise LanguageError(f"unknown function '{call.func}'")
        arity = 2 if call.func in ("contains", "matches") else 1
        field = call.args[0] if call.args else None
        if len(call.args) != arity or not isinstance(field, Name):
            raise LanguageError(f"{call.func}() takes a field{' and a text' * (arity - 1)}")
        value, kind = self.name(field.name)
        if field.name not in self.schema or kind not in FUNCTIONS[call.func]:
            raise LanguageError(f"{call.func}() cannot take '{field.name}' ({kind})")
        if call.func == "known":
            return value is not None, "boolean"
        arg = self.text_arg(call) if arity == 2 else ""
        if value is None:
            return None, "boolean" if arity == 2 else "integer"
        if call.func == "count":
            return len(value), "integer"
        if call.func == "days_since":
            return (self.as_of - value).days, "integer"
        if call.func == "contains":  # an item equal to the text, in any case
            return any(item.casefold() == arg.casefold() for item in value), "boolean"
        return _pattern(arg).search(value) is not None, "boolean"

    @staticmethod
    def text_arg(call: Call) -> str:
        arg = call.args[1]
        if not (isinstance(arg, Lit) and isinstance(arg.value, str)):
            raise LanguageError(f"the second argument of {call.func}() must be a text")
        return arg.value

    def value(self, node: Node) -> tuple[Any, str | None]:
        """What an operand stands for, with its type (None: a literal, typed by context)."""
        if isinstance(node, Lit):
            return node.value, None
        if isinstance(node, Name):
            return self.name(node.name)
        if isinstance(node, Call):
            return self.call(node)
        raise LanguageError(f"{node} is not a value to compare")


def literal_as(value: Any, kind: str) -> Any:
    """A literal read as a value of type ``kind``; raises LanguageError if it is not one."""
    ok = {"number": isinstance(value, int | float) and not isinstance(value, bool),
          "boolean": isinstance(value, bool),
          "date": isinstance(value, str) and _DATE.fullmatch(value) is not None,
          "string": isinstance(value, str), "enum": isinstance(value, str)}
    ok["integer"] = ok["number"]
    if not ok.get(kind, False):
        raise LanguageError(f"{value!r} is not a {kind}")
    return dt.date.fromisoformat(value) if kind == "date" else value


# ----------------------------------------------------------------------------- truth


def _all(results: list[Truth]) -> Truth:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def _any(results: list[Truth]) -> Truth:
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


def _truth(node: Node, scope: _Scope) -> Truth:
    if isinstance(node, AllOf):
        return _all([_truth(i, scope) for i in node.items])
    if isinstance(node, AnyOf):
        return _any([_truth(i, scope) for i in node.items])
    if isinstance(node, Not):
        inner = _truth(node.item, scope)
        return None if inner is None else not inner
    if isinstance(node, Chain):
        links = zip(node.operands, node.ops, node.operands[1:], strict=False)
        return _all([_link(a, op, b, scope) for a, op, b in links])
    value, kind = scope.value(node)
    if kind not in ("boolean", None) or not isinstance(value, bool | None):
        raise LanguageError(f"{node} is not true or false")
    return value


def _link(left: Node, op: str, right: Node, scope: _Scope) -> Truth:
    """One comparison of a chain: a value against a literal, either way round."""
    if op in ("in", "not in"):
        if not isinstance(right, ListOf) or not right.items:
            raise LanguageError(f"'{op}' needs a list of values")
        value, kind = scope.value(left)
        if kind is None or kind == "list":
            raise LanguageError(f"'{op}' needs a field on its left")
        choices = []
        for item in right.items:
            if not isinstance(item, Lit):
                raise LanguageError(f"a list holds literals, not {item}")
            choices.append(literal_as(item.value, kind))
        if value is None:
            return None
        return (value in choices) is (op == "in")
    (a, kind_a), (b, kind_b) = scope.value(left), scope.value(right)
    if (kind_a is None) == (kind_b is None):
        raise LanguageError("a comparison sets a field against a literal")
    kind = kind_a or kind_b
    assert kind is not None
    if kind == "list" or (op not in ("==", "!=") and kind not in ORDERED):
        raise LanguageError(f"'{op}' cannot compare {kind} values")
    if kind_a is None:
        a = literal_as(a, kind)
    else:
        b = literal_as(b, kind)
    if a is None or b is None:
        return None
    return _ORDER[op](a, b)


def evaluate(text: str, lead: Lead, as_of: dt.date, schema: Schema,
             verdict: Mapping[str, Any] | None = None) -> Truth:
    """The condition ``text`` on a typed lead: True, False or None (unknown)."""
    return _truth(parse(text), _Scope(lead, as_of, schema, verdict or {}))


def schema_of(rb: Rulebook) -> dict[str, str]:
    """The lead fields of a rule base and their types."""
    return {name: spec.type for name, spec in rb.fields.items()}


# ----------------------------------------------------------------------------- verdicts


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
    """What a verdict must say, computed the slow, obvious way from the rules' text."""
    schema = schema_of(rb)
    state = {True: "met", False: "unmet", None: "unknown"}
    qualifiers = {q.id: state[evaluate(q.text, lead, as_of, schema)] for q in rb.qualifiers}
    if "unmet" in qualifiers.values():
        status = "disqualified"
    elif "unknown" in qualifiers.values():
        status = "needs_discovery"
    else:
        status = "qualified"
    traits = {t.id: evaluate(t.text, lead, as_of, schema) for t in rb.traits}
    fired = [t.id for t in rb.traits if traits[t.id] is True]
    raw = rb.score_base + sum(t.points for t in rb.traits if traits[t.id] is True)
    score = max(rb.score_min, min(rb.score_max, raw))
    grade = next(g.id for g in sorted(rb.grades, key=lambda g: -g.min_score)
                 if score >= g.min_score or g is rb.grades[-1])
    verdict: dict[str, Any] = {f"qualifier.{k}": v for k, v in qualifiers.items()}
    verdict |= {f"trait.{k}": v is True for k, v in traits.items()}
    verdict |= {"status": status, "grade": grade, "score": score}
    step = next(s.id for s in rb.next_steps
                if evaluate(s.text, lead, as_of, schema, verdict) is True)
    unknown = [q for q, s in qualifiers.items() if s == "unknown"]
    unknown += [t for t, s in traits.items() if s is None]
    return Expected(qualifiers, status, fired, unknown, score, grade, step)
