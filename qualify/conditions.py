"""The condition language: parsed without eval, type-checked against the lead schema.

    budget >= 50000 and contact_role in ["owner", "executive"]
    not is_decision_maker or known(budget)
    contains(pain_points, "manual reporting") and count(open_objections) > 0
    days_since(last_contact_date) > 90 and matches(email, "@acme[.]com$")
    qualifier.authority == "unknown" and trait.urgent_need and grade == "A"   (next steps only)

Python's ``ast`` parses the text; only the node kinds below are accepted and turned into a
small tree of frozen dataclasses (``Expr``). Every value an expression reads is a ``Ref`` with
a type and a ``key`` (the name it has in the flat fact handed to the engine). Functions that
durable-rules cannot compute reliably (lists, dates, regex) become ``Derived`` refs whose
values are computed in Python before matching.

Semantics are three-valued (Kleene): a test on a missing value is unknown; ``false and
unknown`` is false, ``true or unknown`` is true, ``not unknown`` is unknown. ``known(f)`` is
never unknown.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from qualify.errors import did_you_mean
from qualify.patterns import PatternError, compile_pattern

FieldType = Literal["string", "number", "integer", "boolean", "date", "enum", "list"]
NUMERIC = ("number", "integer")
MAX_CONDITION = 4_000  # characters in one condition
MAX_ABS_NUMBER = 1e15  # beyond this durable-rules' number handling is not trusted
FUNCTIONS = ("known", "contains", "count", "days_since", "matches")
VERDICT_NAMES = ("qualifier", "trait", "grade", "status", "score")
STATUSES = ("qualified", "disqualified", "needs_discovery")
STATES = ("met", "unmet", "unknown")

# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Ref:
    """A value a condition reads: a lead field, a derived value, or a verdict value."""

    kind: Literal["field", "derived", "verdict"]
    name: str  # as written: "budget", "count(open_objections)", "qualifier.need"
    key: str  # the key in the engine fact
    type: FieldType
    values: tuple[str, ...] = ()  # enum values
    source: str | None = None  # the lead field it depends on (None for verdict refs)
    func: str | None = None  # derived: contains, count, days_since, matches
    arg: str | None = None  # derived: the string/pattern argument


@dataclass(frozen=True, slots=True)
class Node:
    """Base of condition nodes."""

    def walk(self) -> Iterator[Node]:
        yield self

    def refs(self) -> Iterator[Ref]:
        for node in self.walk():
            ref = getattr(node, "ref", None)
            if isinstance(ref, Ref):
                yield ref

    def sources(self) -> tuple[str, ...]:
        """The lead fields this condition reads, in order of first use."""
        seen: dict[str, None] = {}
        for ref in self.refs():
            if ref.source:
                seen.setdefault(ref.source, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Cmp(Node):
    ref: Ref
    op: str  # == != < <= > >=
    value: Any  # typed literal (dates as ordinals)
    text: str  # the literal as written, for explanations


@dataclass(frozen=True, slots=True)
class In(Node):
    ref: Ref
    values: tuple[Any, ...]
    negated: bool
    text: str


@dataclass(frozen=True, slots=True)
class Known(Node):
    ref: Ref


@dataclass(frozen=True, slots=True)
class Junction(Node):
    """``and`` or ``or`` of two or more conditions."""

    items: tuple[Expr, ...]

    def walk(self) -> Iterator[Node]:
        yield self
        for item in self.items:
            yield from item.walk()


@dataclass(frozen=True, slots=True)
class And(Junction):
    pass


@dataclass(frozen=True, slots=True)
class Or(Junction):
    pass


@dataclass(frozen=True, slots=True)
class Not(Node):
    item: Expr

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.item.walk()


# A condition: a closed union, walked with ``match`` and ``assert_never`` so that a new kind of
# node is a type error wherever a walk forgets it
Expr = Const | Cmp | In | Known | And | Or | Not


_SURROGATE = re.compile("[\ud800-\udfff]")
NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}

# ----------------------------------------------------------------------------- the schema


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the checker needs to know of a lead field."""

    type: FieldType
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerdictInfo:
    """The verdict values next steps may read."""

    qualifiers: tuple[str, ...]
    traits: tuple[str, ...]
    grades: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionError:
    """A mistake in a condition; ``offset`` is the column within the condition text."""

    code: str
    message: str
    offset: int = 0
    hint: str | None = None
    unknown: str | None = None  # the name an unknown-field or unknown-rule error is about


class _Fail(Exception):
    def __init__(self, error: ConditionError) -> None:
        super().__init__(error.message)
        self.error = error


def derived_key(func: str, source: str, arg: str | None) -> str:
    """A stable engine key for a derived value (same call, same key)."""
    if arg is None:
        return f"__{func}__{source}"
    digest = hashlib.sha1(arg.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"__{func}__{source}__{digest}"


def parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Checker:
    def __init__(self, fields: Mapping[str, FieldInfo], verdict: VerdictInfo | None) -> None:
        self.fields = fields
        self.verdict = verdict

    # -- helpers
    def fail(self, node: ast.AST | None, code: str, message: str,
             hint: str | None = None, unknown: str | None = None) -> _Fail:
        return _Fail(ConditionError(code, message, getattr(node, "col_offset", 0), hint,
                                    unknown))

    def field_ref(self, node: ast.AST) -> Ref:
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.fields:
                info = self.fields[name]
                return Ref("field", name, name, info.type, info.values, source=name)
            if name in ("grade", "status", "score"):
                return self.verdict_ref(node, name)
            if name in ("qualifier", "trait"):
                raise self.fail(node, "bad-reference", f"'{name}' needs a name after it",
                                f"write {name}.<id>")
            choices = list(self.fields) + (["grade", "status", "score"] if self.verdict else [])
            raise self.fail(node, "unknown-field", f"unknown field '{name}'",
                            did_you_mean(name, choices) or "declare it under 'fields'", name)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.verdict_ref(node, f"{node.value.id}.{node.attr}")
        raise self.fail(node, "bad-reference", f"expected a field name, got '{_src(node)}'")

    def verdict_ref(self, node: ast.AST, name: str) -> Ref:
        head, _, tail = name.partition(".")
        if self.verdict is None:
            raise self.fail(node, "verdict-not-allowed",
                            f"'{name}' reads the verdict, which only next steps may do",
                            "test lead fields here")
        v = self.verdict
        if head == "qualifier" and tail:
            if tail not in v.qualifiers:
                raise self.fail(node, "unknown-rule", f"unknown qualifier '{tail}'",
                                did_you_mean(tail, v.qualifiers), tail)
            return Ref("verdict", name, f"__q_{tail}", "enum", STATES)
        if head == "trait" and tail:
            if tail not in v.traits:
                raise self.fail(node, "unknown-rule", f"unknown trait '{tail}'",
                                did_you_mean(tail, v.traits), tail)
            return Ref("verdict", name, f"__t_{tail}", "boolean")
        if name == "grade":
            return Ref("verdict", name, "__grade", "enum", v.grades)
        if name == "status":
            return Ref("verdict", name, "__status", "enum", STATUSES)
        if name == "score":
            return Ref("verdict", name, "__score", "integer")
        raise self.fail(node, "unknown-field", f"unknown name '{name}'",
                        did_you_mean(name, [f"qualifier.{q}" for q in v.qualifiers]
                                     + [f"trait.{t}" for t in v.traits]))

    def literal(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and not isinstance(node.value, bytes | complex):
            if isinstance(node.value, str) and _SURROGATE.search(node.value):
                raise self.fail(node, "bad-value", "the text holds an escape such as \\ud800 "
                                "that is half of a character, not a character",
                                "write the character itself")
            return node.value
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            return node.id == "true"
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
                and isinstance(node.operand, ast.Constant)
                and isinstance(node.operand.value, int | float)
                and not isinstance(node.operand.value, bool)):
            return -node.operand.value
        raise self.fail(node, "bad-value", f"expected a value, got '{_src(node)}'",
                        "compare a field with a number, \"text\", true or false")

    def is_literal(self, node: ast.AST) -> bool:
        try:
            self.literal(node)
        except _Fail:
            return False
        return not (isinstance(node, ast.Name) and node.id not in ("true", "false"))

    def typed(self, ref: Ref, value: Any, node: ast.AST) -> Any:
        """Check a literal against a ref's type; return it as the engine should see it."""
        t = ref.type
        if t in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(node, "type-mismatch",
                                f"'{ref.name}' is a number, but {value!r} is not",
                                f"write a number, e.g. {ref.name} >= 100")
            if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
                raise self.fail(node, "bad-value", f"{value!r} is out of range",
                                f"numbers must be within ±{MAX_ABS_NUMBER:.0e}")
            return value
        if t == "boolean":
            if not isinstance(value, bool):
                raise self.fail(node, "type-mismatch",
                                f"'{ref.name}' is true or false, but {value!r} is not",
                                f"write {ref.name} or not {ref.name}")
            return value
        if t == "date":
            d = parse_date(value) if isinstance(value, str) else None
            if d is None:
                raise self.fail(node, "type-mismatch",
                                f"'{ref.name}' is a date, but {value!r} is not",
                                'write a date as "YYYY-MM-DD"')
            return d.toordinal()
        if t in ("string", "enum"):
            if not isinstance(value, str):
                raise self.fail(node, "type-mismatch",
                                f"'{ref.name}' is text, but {value!r} is not",
                                f'quote it: "{value}"')
            if t == "enum" and value not in ref.values:
                raise self.fail(node, "unknown-value",
                                f"'{value}' is not one of {ref.name}'s values "
                                f"({', '.join(ref.values)})",
                                did_you_mean(value, ref.values))
            return value
        raise self.fail(node, "type-mismatch", f"'{ref.name}' is a list and cannot be compared",
                        f"use contains({ref.name}, \"...\") or count({ref.name})")

    # -- the grammar
    def expr(self, node: ast.AST) -> Expr:
        if isinstance(node, ast.BoolOp):
            items = tuple(self.expr(v) for v in node.values)
            cls = And if isinstance(node.op, ast.And) else Or
            flat: list[Expr] = []
            for item in items:  # a and (b and c) -> and(a, b, c)
                flat.extend(item.items if isinstance(item, cls) else (item,))
            return cls(tuple(flat))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.expr(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            expr = self.call(node, want="boolean")
            assert isinstance(expr, Node)
            return expr
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return Const(node.value)
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            return Const(node.id == "true")
        if isinstance(node, ast.Name | ast.Attribute):
            ref = self.field_ref(node)
            if ref.type != "boolean":
                raise self.fail(node, "type-mismatch",
                                f"'{ref.name}' is {_article(ref.type)}, not true or false",
                                f"compare it, e.g. known({ref.name})" if ref.kind == "field"
                                else f"compare it, e.g. {ref.name} == \"...\"")
            return Cmp(ref, "==", True, "true")
        raise self.fail(node, "unsupported", f"'{_src(node)}' is not a condition",
                        "use comparisons joined by and, or, not")

    def operand(self, node: ast.AST) -> Ref:
        if isinstance(node, ast.Call):
            ref = self.call(node, want="value")
            assert isinstance(ref, Ref)
            return ref
        return self.field_ref(node)

    def compare(self, node: ast.Compare) -> Expr:
        parts: list[Expr] = []
        left = node.left
        for op_node, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self.compare_one(left, op_node, right))
            left = right
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def compare_one(self, left: ast.AST, op_node: ast.cmpop, right: ast.AST) -> Expr:
        if isinstance(op_node, ast.In | ast.NotIn):
            ref = self.operand(left)
            if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                raise self.fail(right, "bad-value", "'in' needs a list of values",
                                'write field in ["a", "b"]')
            if not right.elts:
                raise self.fail(right, "bad-value", "the list after 'in' is empty")
            values = tuple(self.typed(ref, self.literal(e), e) for e in right.elts)
            values = tuple(dict.fromkeys(values))
            text = "[" + ", ".join(_show(self.literal(e)) for e in right.elts) + "]"
            return In(ref, values, isinstance(op_node, ast.NotIn), text)
        op = _OPS.get(type(op_node))
        if op is None:
            raise self.fail(left, "unsupported", f"operator '{_src(op_node)}' is not supported",
                            "use == != < <= > >= in, not in")
        if self.is_literal(left) and not self.is_literal(right):
            left, right, op = right, left, _FLIP[op]
        ref = self.operand(left)
        raw = self.literal(right)
        value = self.typed(ref, raw, right)
        if op not in ("==", "!=") and ref.type not in (*NUMERIC, "date"):
            raise self.fail(left, "type-mismatch",
                            f"'{op}' needs a number or a date, and '{ref.name}' is "
                            f"{_article(ref.type)}", "use == or != or in")
        return Cmp(ref, op, value, _show(raw))

    def call(self, node: ast.Call, want: str) -> Expr | Ref:
        name = node.func.id if isinstance(node.func, ast.Name) else _src(node.func)
        if name not in FUNCTIONS:
            raise self.fail(node, "unknown-function", f"unknown function '{name}'",
                            did_you_mean(name, FUNCTIONS) or f"use one of {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise self.fail(node, "bad-call", f"{name}() takes no keyword arguments")
        arity = {"known": 1, "count": 1, "days_since": 1, "contains": 2, "matches": 2}[name]
        if len(node.args) != arity:
            raise self.fail(node, "bad-call", f"{name}() takes {arity} argument"
                            f"{'s' if arity > 1 else ''}, got {len(node.args)}")
        target = node.args[0]
        if not isinstance(target, ast.Name) or target.id not in self.fields:
            if isinstance(target, ast.Name):
                self.field_ref(target)  # raises unknown-field with a suggestion
            raise self.fail(target, "bad-call", f"{name}() takes a lead field")
        info = self.fields[target.id]
        returns_value = name in ("count", "days_since")
        if want == "boolean" and returns_value:
            raise self.fail(node, "type-mismatch", f"{name}() gives a number, not true or false",
                            f"compare it, e.g. {name}({target.id}) > 0")
        if want == "value" and not returns_value:
            raise self.fail(node, "type-mismatch", f"{name}() is true or false, not a value",
                            "use it on its own, without comparing it")
        if name == "known":
            return Known(Ref("field", target.id, target.id, info.type, info.values,
                             source=target.id))
        expected = {"contains": "list", "count": "list", "days_since": "date",
                    "matches": "string"}[name]
        ok = info.type == expected or (name == "matches" and info.type == "enum")
        if not ok:
            raise self.fail(target, "type-mismatch",
                            f"{name}() needs {_article(expected)} field, and '{target.id}' "
                            f"is {_article(info.type)}")
        arg = None
        if arity == 2:
            arg_node = node.args[1]
            arg = self.literal(arg_node)
            if not isinstance(arg, str):
                raise self.fail(arg_node, "type-mismatch",
                                f"the second argument of {name}() must be \"text\"")
            if name == "matches":
                try:
                    compile_pattern(arg)
                except PatternError as e:
                    raise self.fail(arg_node, "bad-regex", f"invalid pattern: {e}") from None
        shown = f"{name}({target.id}" + (f", {_show(arg)})" if arg is not None else ")")
        rtype: FieldType = "integer" if returns_value else "boolean"
        # a list field's engine value is its item count, so count(x) reads x itself
        key = target.id if name == "count" else derived_key(name, target.id, arg)
        ref = Ref("derived", shown, key, rtype,
                  source=target.id, func=name, arg=arg)
        if returns_value:
            return ref
        return Cmp(ref, "==", True, "true")


def _src(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every parsed node
        return type(node).__name__


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _article(t: str) -> str:
    return {"integer": "a number", "number": "a number", "boolean": "true/false",
            "enum": "a choice", "string": "text", "date": "a date", "list": "a list"}.get(t, t)


_MISTAKES = [
    (re.compile(r"(?<![=<>!])(=)(?!=)"), "==", "to compare, write ==: {fixed}"),
    (re.compile(r"(<>)"), "!=", "write != for 'is not equal to': {fixed}"),
    (re.compile(r"(&&)"), " and ", "write and instead of &&: {fixed}"),
    (re.compile(r"(\|\|)"), " or ", "write or instead of ||: {fixed}"),
]


def parse_condition(text: str | bool, fields: Mapping[str, FieldInfo],
                    verdict: VerdictInfo | None = None) -> Expr | ConditionError:
    """Parse and type-check one condition. Returns the tree, or the first error in it."""
    if isinstance(text, bool):
        return Const(text)
    if not isinstance(text, str) or not text.strip():
        return ConditionError("bad-condition", "a condition must be non-empty text")
    source = " ".join(text.split("\n"))  # folded YAML: newlines are spaces
    if len(source) > MAX_CONDITION:
        return ConditionError("too-complex", f"the condition is {len(source):,} characters "
                              f"long (at most {MAX_CONDITION:,})", 0,
                              "split it into several rules")
    try:
        with warnings.catch_warnings():  # "\d" means \d whatever Python's warning filters
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            tree = ast.parse(source.strip(), mode="eval")
    except (RecursionError, MemoryError):
        return ConditionError("too-complex", "the condition is nested too deeply")
    except SyntaxError as e:
        offset = max((e.offset or 1) - 1, 0)
        written = source.strip()
        for mistake, right, hint in _MISTAKES:  # what people bring from SQL, Excel and C
            if m := mistake.search(written):
                fixed = " ".join(f"{written[:m.start(1)]}{right}{written[m.end(1):]}".split())
                return ConditionError("syntax", f"cannot parse condition: {e.msg}",
                                      m.start(1), hint.format(fixed=fixed))
        return ConditionError("syntax", f"cannot parse condition: {e.msg}", offset,
                              "write e.g. budget >= 10000 and known(contact_role)")
    checker = _Checker(fields, verdict)
    try:
        return checker.expr(tree.body)
    except _Fail as f:
        return f.error
    except RecursionError:
        return ConditionError("too-complex", "the condition is nested too deeply")
