"""Say it in words: fields, values, conditions and evidence as a salesperson reads them.

One renderer, in English and Chinese, for everything people read: explanation lines and
evidence (``Budget: USD 80,000 (at least USD 10,000)``, ``预算:80,000 美元(至少 10,000
美元)``), next-step reasons, ``rules doc`` (``Budget at least USD 10,000``) and
``rules diff``. Fields speak through the rule base: their labels, their values' labels
(``payment_history: defaulted`` -> 付款记录:违约), a yes/no field's own phrasing, units and
the rule base's currency. The machine form of a test (``>= 10000``) stays in the evidence
data beside these words.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, assert_never

from qualify.conditions import NEGATE, And, Cmp, Const, Expr, In, Known, Not, Or, Ref
from qualify.rulebook import FieldSpec, Rule, Rulebook

STATUS_TEXT = {
    "en": {"qualified": "qualified", "disqualified": "disqualified",
           "needs_discovery": "needs discovery"},
    "zh": {"qualified": "准客户", "disqualified": "非准客户", "needs_discovery": "需进一步了解"},
}
STATE_TEXT = {
    "en": {"met": "met", "unmet": "not met", "unknown": "not known yet"},
    "zh": {"met": "满足", "unmet": "不满足", "unknown": "待确认"},
}
# Chinese names of common currencies; others show their ISO code
CURRENCY_ZH = {"USD": "美元", "CNY": "元", "RMB": "元", "EUR": "欧元", "GBP": "英镑",
               "JPY": "日元", "HKD": "港元", "TWD": "新台币", "SGD": "新加坡元",
               "AUD": "澳元", "CAD": "加元", "CHF": "瑞士法郎", "KRW": "韩元"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# A comparison with its literal, in words: numbers, dates, counts and days
_NUMBER = {
    "en": {">=": "at least {}", ">": "over {}", "<=": "at most {}", "<": "under {}",
           "==": "exactly {}", "!=": "other than {}"},
    "zh": {">=": "至少 {}", ">": "超过 {}", "<=": "不超过 {}", "<": "低于 {}",
           "==": "等于 {}", "!=": "不等于 {}"},
}
_DATE = {
    "en": {">=": "on or after {}", ">": "after {}", "<=": "on or before {}", "<": "before {}",
           "==": "on {}", "!=": "not on {}"},
    "zh": {">=": "不早于 {}", ">": "晚于 {}", "<=": "不晚于 {}", "<": "早于 {}",
           "==": "为 {}", "!=": "不是 {}"},
}
_W = {
    "en": {"and": "and", "or": "or", "not": "not {}", "always": "always", "never": "never",
           "yes": "yes", "no": "no", "none": "none", "unknown_value": "not known",
           "known": "{} is known", "unknown": "{} is not known", "is": "{} is {}",
           "is not": "{} is not {}", "either": "{} or {}", "neither": "neither {} nor {}",
           "none of": "none of {}", "not one": "not {}", "list": ", ", "evidence": "{}: {}",
           "flag": "{}: {}", "measure": "{}: {}", "because": " ({})", "count": "{}: {}",
           "no items": "no {}", "none held": "has no {}", "some": "has {}",
           "ago": "{}: {} days ago", "ahead": "{}: in {} days", "days cond": "{} {} days ago",
           "days": "{} days", "include": "{} include {}", "exclude": "{} do not include {}",
           "match": "{} matches the pattern {}", "no match": "{} does not match the pattern {}",
           "trait": "trait “{}” applies", "no trait": "trait “{}” does not apply",
           "status": "status", "grade": "grade", "score": "score",
           "sep": "; ", "missing": "no data on {}", "dash": " — ", "group": "({})",
           "costs": "{:+d} points", "fewest": "adds the fewest points: {:+d}",
           "head": "{}: {}, score {}, grade {} ({})", "weakest": "Weakest area: ",
           "next": "Next step: ", "points": " ({:+d})"},
    "zh": {"and": "且", "or": "或", "not": "非（{}）", "always": "总是", "never": "从不",
           "yes": "是", "no": "否", "none": "无", "unknown_value": "未知", "known": "{}已知",
           "unknown": "{}未知", "is": "{}为{}", "is not": "{}不是{}", "either": "{}或{}",
           "neither": "既不是{}也不是{}", "none of": "不是{}", "not one": "不是{}", "list": "、",
           "evidence": "{}：{}", "flag": "{}：{}", "measure": "{}：{}", "because": "（{}）",
           "count": "{}共 {} 项", "no items": "没有{}", "none held": "没有{}", "some": "有{}",
           "ago": "距{}已 {} 天", "ahead": "{}在 {} 天后", "days cond": "距{}{} 天",
           "days": "{} 天", "include": "{}包含{}", "exclude": "{}不包含{}",
           "match": "{}符合格式 {}", "no match": "{}不符合格式 {}", "trait": "具备特质“{}”",
           "no trait": "不具备特质“{}”",
           "status": "状态", "grade": "评级", "score": "得分", "sep": "；",
           "missing": "尚无{}的信息", "dash": "——", "group": "（{}）", "costs": "{:+d} 分",
           "fewest": "加分最少：{:+d}",
           "head": "{}：{}，得分 {}，评级 {}（{}）", "weakest": "短板：",
           "next": "下一步：", "points": "（{:+d}）"},
}
# What a test says of a value: the effective comparison, or membership after the state
Say = Callable[[Any], str]


def _positional(value: float) -> str:
    """A float's shortest exact digits, grouped, without an exponent: 0.0002, not 2e-04."""
    return format(Decimal(repr(value)), ",f")


def lower_first(text: str) -> str:
    """``Payment history`` -> ``payment history`` for use mid-sentence; ``CRM notes`` stays."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


class Words:
    """Labels, values, conditions and evidence of one rule base in one locale."""

    def __init__(self, rulebook: Rulebook, locale: str) -> None:
        self.rb = rulebook
        self.locale = locale
        self.w: Mapping[str, str] = _W[locale]
        self.sep = "、" if locale == "zh" else ", "
        self.colon = "：" if locale == "zh" else ": "
        self.dash = self.w["dash"]
        self.status = STATUS_TEXT[locale]
        self.state = STATE_TEXT[locale]
        self.rule_labels = {r.id: r.label[locale] for r in rulebook.rules}
        self._names: dict[str, str] = {}  # field or derived name -> its words, memoised

    # ------------------------------------------------------------------ names and values

    def label(self, field: str) -> str:
        """A lead field's label (its name if the rule base has no such field)."""
        spec = self.rb.fields.get(field)
        return spec.label[self.locale] if spec else field

    def field(self, name: str) -> str:
        """A field, or a derived value such as ``count(x)``, as this locale names it."""
        words = self._names.get(name)
        if words is None:
            head, paren, rest = name.partition("(")
            words = self.label(rest.split(",")[0].rstrip(")")) if paren else self.label(head)
            self._names[name] = words
        return words

    def fields(self, names: Sequence[str]) -> str:
        """Field labels, for mid-sentence: ``budget, annual revenue`` / ``预算、年营业额``."""
        out = [self.field(n) for n in names]
        if self.locale == "en":
            out = [lower_first(o) for o in out]
        return self.sep.join(out)

    def missing(self, names: Sequence[str]) -> str:
        return self.w["missing"].format(self.fields(names))

    def value(self, field: str, value: Any) -> str:
        """A lead value in words: its label, yes/no phrasing, number with unit, date."""
        spec = self.rb.fields.get(field)
        if value is None:
            return self.w["unknown_value"]
        if isinstance(value, bool):
            if spec and spec.value_labels:
                return spec.value_labels[value][self.locale]
            return self.w["yes" if value else "no"]
        if isinstance(value, list | tuple):
            if not value:
                return self.w["none"]
            return self.sep.join(self.value("", v) for v in value)
        if isinstance(value, str):
            if spec is not None and spec.type == "date":
                try:
                    return self.date(dt.date.fromisoformat(value))
                except ValueError:
                    return value
            if spec and spec.value_labels and value in spec.value_labels:
                return spec.value_labels[value][self.locale]
            return value
        if isinstance(value, dt.date):
            return self.date(value)
        if isinstance(value, int | float):
            return self.amount(spec, value)
        return str(value)

    def number(self, value: float, *, exact: bool = False) -> str:
        """Grouped: 80,000; 1,234.5 (two decimals at most); a fraction that would read 0 to
        its first two significant digits (0.0002); ``exact``: every digit (9,999.999)."""
        if isinstance(value, float) and not value.is_integer():
            if exact:
                return _positional(value)
            text = f"{value:,.2f}".rstrip("0").rstrip(".")
            if text not in ("0", "-0"):
                return text
            return _positional(float(f"{value:.2g}"))
        return f"{int(value):,}"

    def amount(self, spec: FieldSpec | None, value: float, *, exact: bool = False) -> str:
        """A number with its field's unit or the rule base's currency; ``exact``: every
        digit and no 万 (a value that would round onto the figure it is compared with)."""
        text = self.number(value, exact=exact)
        unit = spec.unit if spec else None
        if unit is None:
            return text
        if unit == "currency":
            code = self.rb.currency
            if not code:
                return text
            if self.locale == "zh":
                name = CURRENCY_ZH.get(code.upper(), code)
                return f"{text} {name}" if exact else f"{self.wan(value)}{name}"
            return f"{code} {text}"
        return f"{text} {unit[self.locale]}"

    def wan(self, value: float) -> str:
        """A Chinese amount: ``8 万``, ``1,200 万``, ``2.5 亿``, ``1 万亿``; below 10,000 as
        it is. The unit is the largest the rounded figure reaches (99,999,999 is 1 亿)."""
        for step, word in ((10 ** 12, "万亿"), (10 ** 8, "亿"), (10 ** 4, "万")):
            figure = round(value / step, 2)
            if abs(figure) >= 1:
                return f"{self.number(figure)} {word}"
        return f"{self.number(value)} "

    def date(self, day: dt.date) -> str:
        if self.locale == "zh":
            return f"{day.year}年{day.month}月{day.day}日"
        return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"

    def choices(self, field: str, values: Sequence[Any], *, negated: bool) -> str:
        """``owner or executive``, ``neither owner nor executive``; 或/不是."""
        shown = [self.value(field, v) for v in values]
        if len(shown) == 1:
            return shown[0] if not negated else self.w["not one"].format(shown[0])
        if self.locale == "zh":
            return ("不是" if negated else "") + "、".join(shown[:-1]) + "或" + shown[-1]
        if negated:
            if len(shown) == 2:
                return self.w["neither"].format(*shown)
            return self.w["none of"].format(", ".join(shown[:-1]) + " or " + shown[-1])
        return ", ".join(shown[:-1]) + " or " + shown[-1]

    # ------------------------------------------------------------------ conditions

    def condition(self, expr: Expr) -> str:
        """The condition in words for the sales team (``rules doc``): one sentence."""
        text = self._show(expr, None)
        if self.locale == "en":  # a capital at its first letter, after any bracket
            at = len(text) - len(text.lstrip("(“"))
            return text[:at] + text[at:at + 1].upper() + text[at + 1:]
        return text

    def _show(self, expr: Expr, parent: type[Expr] | None) -> str:
        match expr:
            case And() | Or():
                word = self.w["and" if isinstance(expr, And) else "or"]
                joiner = f"，{word}" if self.locale == "zh" else f" {word} "
                text = joiner.join(self._show(i, type(expr)) for i in expr.items)
                nested = parent in (And, Or, Not) and parent is not type(expr)
                return self.w["group"].format(text) if nested else text
            case Not():
                return self._negate(expr.item)
            case Const():
                return self.w["always" if expr.value else "never"]
            case Known():
                return self._mid(self.w["known"].format(self._name(expr.ref)))
            case In():
                return self._mid(self._member(expr.ref, expr.values, expr.negated))
            case Cmp():
                return self._mid(self._compare(expr.ref, expr.op, expr.value))
            case _:
                assert_never(expr)

    def _mid(self, text: str) -> str:
        """A condition's part as it reads mid-sentence."""
        return lower_first(text) if self.locale == "en" else text

    def _negate(self, item: Expr) -> str:
        # Kleene: "not (x op c)" is "x op' c" and "not x in [..]" is "x not in [..]"
        if isinstance(item, Known):
            return self._mid(self.w["unknown"].format(self._name(item.ref)))
        if isinstance(item, Cmp):
            return self._mid(self._compare(item.ref, NEGATE[item.op], item.value))
        if isinstance(item, In):
            return self._mid(self._member(item.ref, item.values, not item.negated))
        # Chinese 非（…） brackets the part itself; English "not (a and b)" needs the group
        return self.w["not"].format(self._show(item, Not if self.locale == "en" else None))

    def _member(self, ref: Ref, values: Sequence[Any], negated: bool) -> str:
        choices = self.choices(ref.source or "", [self._literal(ref, v) for v in values],
                               negated=negated)
        if self.locale == "zh":
            return f"{self._name(ref)}{'' if negated else '为'}{choices}"
        return f"{self._name(ref)} is {choices}"

    def _compare(self, ref: Ref, op: str, literal: Any) -> str:
        """``ref op literal`` as a condition in words."""
        name = self._name(ref)
        if ref.kind == "verdict":
            return self._verdict(ref, op, literal)
        if ref.func in ("contains", "matches") or ref.type == "boolean":
            holds = (op == "==") == (literal is True)
            return self._flag(ref, holds)
        if ref.func == "count":
            return self._count_condition(name, op, literal)
        if ref.func == "days_since":
            phrase = _NUMBER[self.locale][op].format(self.number(literal))
            return self.w["days cond"].format(name, phrase)
        value = self._literal(ref, literal)
        if ref.type in ("enum", "string"):
            return self.w["is" if op == "==" else "is not"].format(name, value)
        table = _DATE if ref.type == "date" else _NUMBER
        between = "" if self.locale == "zh" else " "
        return f"{name}{between}{table[self.locale][op].format(value)}"

    def _flag(self, ref: Ref, holds: bool) -> str:
        """A yes/no value: a boolean field, ``contains`` or ``matches``."""
        name = self._name(ref)
        if ref.func == "contains":
            arg = self.value(ref.source or "", ref.arg)
            return self.w["include" if holds else "exclude"].format(name, arg)
        if ref.func == "matches":
            return self.w["match" if holds else "no match"].format(name, ref.arg)
        spec = self.rb.fields.get(ref.source or "")
        if spec and spec.value_labels:
            return spec.value_labels[holds][self.locale]
        return self.w["flag"].format(name, self.w["yes" if holds else "no"])

    def _count_condition(self, name: str, op: str, n: int) -> str:
        if (op, n) in ((">", 0), (">=", 1), ("!=", 0)):
            return self.w["some"].format(lower_first(name))
        if (op, n) in (("==", 0), ("<", 1), ("<=", 0)):
            return self.w["none held"].format(lower_first(name))
        phrase = _NUMBER[self.locale][op].format(self.number(n))
        return self.w["count"].format(name, phrase) if self.locale == "en" \
            else f"{name}{phrase} 项"

    def _verdict(self, ref: Ref, op: str, literal: Any) -> str:
        head, _, tail = ref.name.partition(".")
        if head == "trait":
            holds = (op == "==") == (literal is True)
            return self.w["trait" if holds else "no trait"].format(
                self.rule_labels.get(tail, tail))
        if head == "qualifier":
            name = f"“{self.rule_labels.get(tail, tail)}”"
            states = STATE_TEXT[self.locale]
            if op == "!=" and literal in states:  # "is met or not known yet", not "is not unmet"
                a, b = (text for state, text in states.items() if state != literal)
                return self.w["is"].format(name, self.w["either"].format(a, b))
            value = states.get(literal, literal)
        else:
            name = self.w.get(ref.name, ref.name)
            value = STATUS_TEXT[self.locale].get(literal, literal) \
                if ref.name == "status" else str(literal)
        if isinstance(literal, str):
            return self.w["is" if op == "==" else "is not"].format(name, value)
        between = "" if self.locale == "zh" else " "
        return f"{name}{between}{_NUMBER[self.locale][op].format(value)}"

    def _literal(self, ref: Ref, literal: Any) -> Any:
        """A condition's literal as the lead would hold it (dates are kept as ordinals)."""
        if ref.type == "date" and isinstance(literal, int):
            return self.date(dt.date.fromordinal(literal))
        return self.value(ref.source or "", literal) if ref.kind == "field" else literal

    def _name(self, ref: Ref) -> str:
        if ref.kind == "verdict":
            return self.w.get(ref.name, ref.name)
        return self.label(ref.source or ref.name)

    # ------------------------------------------------------------------ evidence

    def atom(self, expr: Cmp | In | Known, holds: bool) -> Say:
        """How an atom's evidence reads for a lead value, given whether the atom held. The
        words are the fact that decided: the value, and what it was measured against where
        that is not plain from the value. A sentence of its own (``evidence`` joins them)."""
        say = self._atom(expr, holds)
        if self.locale != "en":
            return say

        def sentence(value: Any) -> str:
            text = say(value)
            return text[:1].upper() + text[1:]
        return sentence

    def _atom(self, expr: Cmp | In | Known, holds: bool) -> Say:
        ref, name = expr.ref, self._name(expr.ref)
        if isinstance(expr, Known):
            text = self.w["known" if holds else "unknown"].format(name)
            return lambda value: text
        if isinstance(expr, In):
            inside = holds != expr.negated  # the value is one of the listed values
            if inside or holds:
                return self._said("evidence", name, ref, "")
            against = self.w["because"].format(self.choices(
                ref.source or "", [self._literal(ref, v) for v in expr.values], negated=True))
            return self._said("evidence", name, ref, against)
        op = expr.op if holds else NEGATE[expr.op]
        if ref.func in ("contains", "matches") or ref.type == "boolean":
            text = self._flag(ref, (op == "==") == (expr.value is True))
            return lambda value: text
        if ref.func == "count":
            return self._count_evidence(name, op, expr.value)
        if ref.func == "days_since":
            against = self.w["because"].format(
                _NUMBER[self.locale][op].format(self.w["days"].format(self.number(expr.value))))

            def days(value: Any) -> str:
                if isinstance(value, int) and value < 0:
                    return self.w["ahead"].format(name, self.number(-value))
                return self.w["ago"].format(name, self.number(value)) + against
            return days
        if ref.type in ("enum", "string"):
            # a value that failed its test says what it is not; one that passed, only itself
            plain = op == "==" or holds
            suffix = "" if plain else self.w["because"].format(
                self.choices(ref.source or "", [self._literal(ref, expr.value)], negated=True))
            return self._said("evidence", name, ref, suffix)
        if ref.type == "date":
            suffix = "" if op == "==" else self.w["because"].format(
                _DATE[self.locale][op].format(self._literal(ref, expr.value)))
            return self._said("measure", name, ref, suffix)
        return self._measured(name, ref, op, expr.value)

    def _measured(self, name: str, ref: Ref, op: str, limit: Any) -> Say:
        """``budget: USD 9,999.999 (under USD 10,000)``: a number never rounds onto the
        figure it was compared with (it is shown exactly when it would)."""
        field = ref.source or ""
        limit_text = self.value(field, limit)
        suffix = "" if op == "==" else self.w["because"].format(
            _NUMBER[self.locale][op].format(limit_text))
        plain, spec = self.shower(field), self.rb.fields.get(field)

        def show(value: Any) -> str:
            text = plain(value)
            if text == limit_text and value != limit and type(value) in (int, float):
                return self.amount(spec, value, exact=True)
            return text
        return self._said("measure", name, ref, suffix, show)

    def _said(self, form: str, name: str, ref: Ref, suffix: str, show: Say | None = None
              ) -> Say:
        """``name: value (suffix)`` in ``form``, its fixed parts joined once; the value as
        ``show`` says it (default: the field's own ``shower``)."""
        before, after = self.w[form].format(name, "\0").split("\0")
        after += suffix
        show = show or self.shower(ref.source or "")
        return lambda value: before + show(value) + after

    def shower(self, field: str) -> Say:
        """``value`` for one field, its labels looked up once (explaining afresh costs less)."""
        spec = self.rb.fields.get(field)
        if spec is not None and spec.type == "enum" and spec.value_labels:
            labels = {code: label[self.locale] for code, label in spec.value_labels.items()}
            return lambda value: labels.get(value) or self.value(field, value)
        if spec is not None and spec.type in ("number", "integer"):
            return lambda value: self.amount(spec, value) if type(value) in (int, float) \
                else self.value(field, value)
        return lambda value: self.value(field, value)

    def _count_evidence(self, name: str, op: str, n: int) -> Say:
        plain = (op, n) in ((">", 0), (">=", 1), ("==", 0), ("<", 1), ("<=", 0), ("!=", 0))
        items = self.number(n) + (" 项" if self.locale == "zh" else "")
        suffix = "" if plain else self.w["because"].format(
            _NUMBER[self.locale][op].format(items))

        def count(value: Any) -> str:
            if not value:
                return self.w["no items"].format(lower_first(name))
            return self.w["count"].format(name, self.number(value)) + suffix
        return count

    def evidence(self, items: Sequence[Mapping[str, Any]]) -> str:
        """Evidence items' words in one run: ``budget: USD 80,000 (...); in their plan``."""
        texts = [item["text"] for item in items]
        if self.locale == "en":
            texts = [lower_first(t) for t in texts]
        return self.w["sep"].join(texts)

    def template(self, rule: Rule
                 ) -> Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any],
                                Mapping[str, Any]], str]:
        """How a decided rule's evidence reads: its own template (``evidence:`` in the rule
        base, naming {evidence} or the values its condition reads), or the evidence's words."""
        text = rule.says.get(self.locale)
        if not text:
            return lambda evidence, fact, lead: self.evidence(evidence)
        derived = {r.name: r for r in rule.expr.refs() if r.kind == "derived"}
        pieces = [(literal, name) for literal, name, _, _ in string.Formatter().parse(text)]

        def fill(evidence: Sequence[Mapping[str, Any]], fact: Mapping[str, Any],
                 lead: Mapping[str, Any]) -> str:
            out = []
            for literal, name in pieces:
                out.append(literal)
                if name is None:
                    continue
                if name == "evidence":
                    out.append(self.evidence(evidence))
                elif name in derived:
                    ref = derived[name]
                    value = fact.get(ref.key)
                    out.append(self.w["unknown_value"] if value is None
                               else self.number(value) if ref.func in ("count", "days_since")
                               else self._flag(ref, bool(value)))
                else:
                    out.append(self.value(name, lead.get(name)))
            return "".join(out)
        return fill
