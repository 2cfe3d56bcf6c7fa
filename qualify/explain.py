"""Why a rule decided as it did: the values that decided it, each with its words.

The engine says which rules fired; this module finds, for a decided rule, the atoms that
decided it (for ``a or b`` that is true: only the true branches), and drops a ``known(x)``
guard where a test on x itself decided. Each condition tree is compiled once per locale into
nested closures, so explaining costs a few dict look-ups per atom; the words of each atom
come from ``words.py``.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any, assert_never

from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import Rulebook
from qualify.verdict import Evidence
from qualify.words import Words

# (fact, lead, state the engine decided) -> the evidence that decided it
Explainer = Callable[[Mapping[str, Any], Mapping[str, Any], bool | None], list[Evidence]]

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
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


def _compile(expr: Expr, words: Words | None, keep: int = 0) -> _Node:
    match expr:
        case Const():
            return _const(expr, words, keep)
        case Known():
            return _known(expr, words, keep)
        case Cmp() | In():
            return _atom(expr, words, keep)
        case Not():
            return _not(expr, words, keep)
        case And() | Or():
            return _junction(expr, words, keep)
        case _:
            assert_never(expr)


def _const(expr: Const, words: Words | None, keep: int) -> _Node:
    value = expr.value
    return _Node(lambda fact: value, lambda fact, lead, st, out: None)


def _known(expr: Known, words: Words | None, keep: int) -> _Node:
    key, name, show = expr.ref.key, expr.ref.name, _reader(expr.ref)
    is_known, not_known = (words.atom(expr, True)(None), words.atom(expr, False)(None)) \
        if words else ("", "")

    def known_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                      out: list[Evidence]) -> None:
        if st:
            out.append({"field": name, "value": show(fact, lead), "test": "known",
                        "holds": True, "text": is_known})
        else:
            out.append({"field": name, "value": None, "test": "not known", "holds": False,
                        "text": not_known})
    return _Node(lambda fact: key in fact, known_collect)


def _atom(expr: Cmp | In, words: Words | None, keep: int) -> _Node:
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
    say_yes, say_no = (words.atom(expr, True), words.atom(expr, False)) if words \
        else (_silent, _silent)
    missing = object()

    def atom_state(fact: Mapping[str, Any]) -> bool | None:
        v = fact.get(key, missing)
        return None if v is missing else test(v)

    said: dict[tuple[bool, Any], str] = {}  # words by state and value: few differ

    def atom_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                     out: list[Evidence]) -> None:
        if st is not None:
            value = show(fact, lead)
            try:
                text = said[st, value]
            except (KeyError, TypeError):  # new, or a list (unhashable)
                text = (say_yes if st else say_no)(value)
                if keep and type(value) is not list:
                    if len(said) >= keep:
                        said.clear()
                    said[st, value] = text
            out.append({"field": name, "value": value, "test": yes if st else no,
                        "holds": st, "text": text})
    return _Node(atom_state, atom_collect)


def _not(expr: Not, words: Words | None, keep: int) -> _Node:
    inner = _compile(expr.item, words, keep)
    inner_state, inner_collect = inner.state, inner.collect

    def not_state(fact: Mapping[str, Any]) -> bool | None:
        st = inner_state(fact)
        return None if st is None else not st

    def not_collect(fact: Mapping[str, Any], lead: Mapping[str, Any], st: bool | None,
                    out: list[Evidence]) -> None:
        inner_collect(fact, lead, None if st is None else not st, out)
    return _Node(not_state, not_collect)


def _junction(expr: And | Or, words: Words | None, keep: int) -> _Node:
    parts = tuple(_compile(i, words, keep) for i in expr.items)
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




def compile_explainer(expr: Expr, words: Words, keep: int = 0) -> Explainer:
    """A function (fact, lead, state) -> the evidence for a state the engine decided, its
    words in ``words``' locale (each atom keeps up to ``keep`` of them by state and value)."""
    collect = _compile(expr, words, keep).collect
    source = {r.name: r.source for r in expr.refs()}  # evidence field -> the lead field
    guarded = any(isinstance(n, Known) for n in expr.walk())

    def explain(fact: Mapping[str, Any], lead: Mapping[str, Any],
                state: bool | None) -> list[Evidence]:
        out: list[Evidence] = []
        collect(fact, lead, state, out)
        if guarded and len(out) > 1:
            return _drop_guards(out, source)
        return out
    return explain


def _drop_guards(items: list[Evidence], source: Mapping[str, str | None]) -> list[Evidence]:
    """Without ``known(x)`` items where a test on x itself is evidence too: the test says
    what decided (``payment history: defaulted``, not also ``payment history is known``)."""
    guard = ("known", "not known")
    tested = {source.get(e["field"]) for e in items if e["test"] not in guard}
    return [e for e in items if e["test"] not in guard or source.get(e["field"]) not in tested]


def _silent(value: Any) -> str:
    return ""


def decide(expr: Expr, fact: Mapping[str, Any]) -> bool | None:
    """Evaluate a condition three-valued on an engine fact (for tools; the engine uses
    durable-rules)."""
    return _compile(expr, None).state(fact)


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


PASSED_OVER = {
    "en": ("Other next steps (checked in order; the first that fits is chosen): ",
           "not applicable", "can't tell yet",
           "filling in these details may change the recommended next step"),
    "zh": ("其他下一步（按顺序检查，取第一个符合的）：", "不适用", "待确认",
           "补充这些信息后，推荐的下一步可能会改变"),
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
            unknowns.append(label + words.w["because"].format(words.missing(missing)))
        else:
            falses.append(label)
    parts = [f"{unknown}{words.colon}{words.w['sep'].join(unknowns)}"] if unknowns else []
    between = "、" if locale == "zh" else "; "  # labels may hold commas
    parts += [f"{false}{words.colon}{between.join(falses)}"] if falses else []
    if not parts:
        return []
    return [head + words.w["sep"].join(parts),
            *(["  " + words.w["because"].format(note).strip()] if unknowns else [])]
