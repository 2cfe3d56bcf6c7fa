"""Explanations in the words of sales: hand-written cases per kind of test, in en and zh,
and a sweep over generated leads that no line or reason speaks code.

Code, for a salesperson, is an operator (``==``, ``>=``, ``in [``), a quoted value, ``true``
or ``false``, a function name, a field's id, or (in Chinese) an enum's English code.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from qualify import Engine, synthetic
from qualify.errors import RulebaseError
from qualify.explain import passed_over
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook, load_rulebook_text
from qualify.words import Words

AS_OF = dt.date(2026, 1, 1)

RULES = """
rulebook: words
version: 1
currency: CNY
fields:
  budget: {type: number, unit: currency, label: {en: Budget, zh: 预算}}
  distance: {type: number, unit: {en: km, zh: 公里}, label: {en: Distance, zh: 距离}}
  visits: {type: integer, label: {en: Visits, zh: 到访次数}}
  role:
    type: enum
    values:
      owner: {en: owner, zh: 老板}
      staff: {en: staff, zh: 普通员工}
      buyer: {en: buyer, zh: 采购}
    label: {en: Role, zh: 职位}
  plain: {type: enum, values: [a, b], label: {en: Plain, zh: 普通}}
  vip: {type: boolean, label: {en: VIP, zh: 大客户}}
  decides:
    type: boolean
    label: {en: Decides, zh: 决策}
    values:
      true: {en: the contact decides, zh: 联系人能拍板}
      false: {en: the contact does not decide, zh: 联系人不能拍板}
  pains: {type: list, label: {en: Pain points, zh: 痛点}}
  seen: {type: date, label: {en: Last contact, zh: 最近联系日期}}
  signed: {type: date, label: {en: Signed, zh: 签约日期}}
  email: {type: string, label: {en: Email, zh: 邮箱}}
qualifiers:
  q: {label: {en: Q, zh: 条件}, when: "true"}
traits:
  - {id: rich, kind: golden, points: 10, when: "budget >= 10000", label: {en: Rich, zh: 有钱}}
  - {id: far, kind: bad, points: -5, when: "distance > 500", label: {en: Far, zh: 远}}
  - {id: regular, kind: golden, points: 5, when: "visits == 3", label: {en: R, zh: 常客}}
  - {id: boss, kind: golden, points: 5, when: 'role in ["owner", "buyer"]',
     label: {en: Boss, zh: 老板}}
  - {id: not_staff, kind: golden, points: 5, when: 'role != "staff"',
     label: {en: NS, zh: 非员工}}
  - {id: big, kind: golden, points: 5, when: vip, label: {en: Big, zh: 大}}
  - {id: decider, kind: golden, points: 5, when: decides, label: {en: D, zh: 决}}
  - {id: pained, kind: golden, points: 5, when: "count(pains) >= 2", label: {en: P, zh: 痛}}
  - {id: some_pain, kind: golden, points: 5, when: "count(pains) > 0",
     label: {en: SP, zh: 有痛}}
  - {id: stale, kind: bad, points: -5, when: "days_since(seen) > 90", label: {en: S, zh: 久}}
  - {id: late, kind: bad, points: -5, when: 'signed < "2025-06-01"', label: {en: L, zh: 晚}}
  - {id: pricey, kind: bad, points: -5, when: 'contains(pains, "price")',
     label: {en: Pr, zh: 价}}
  - {id: work_mail, kind: golden, points: 5, when: 'matches(email, "@acme[.]com$")',
     label: {en: W, zh: 工}}
  - {id: guarded, kind: golden, points: 5, when: 'not known(role) or role != "staff"',
     label: {en: G, zh: 守}}
  - id: own_words
    kind: bad
    points: -5
    when: "days_since(seen) > 30"
    evidence: {en: "quiet for {days_since(seen)} days, since {seen}",
               zh: "已 {days_since(seen)} 天没有联系(上次:{seen})"}
    label: {en: Quiet, zh: 沉寂}
grades:
  - {id: A, min_score: 0}
next_steps:
  - {id: call, label: {en: Call, zh: 打电话}, reason: {en: "role {role}", zh: "职位{role}"}}
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    with Engine(load_rulebook_text(RULES, "words.yaml")) as e:
        yield e


def texts(engine: Engine, lead: dict[str, Any], locale: str) -> dict[str, list[str]]:
    """Each trait's evidence words, by trait id."""
    v = engine.score({"lead_id": "L", **lead}, as_of=AS_OF, locale=locale)
    return {t["id"]: [e["text"] for e in t["evidence"]] for t in v.traits}


CASES = [  # (lead, trait, en, zh)
    ({"budget": 80000}, "rich", ["Budget: CNY 80,000 (at least CNY 10,000)"],
     ["预算:8 万元(至少 1 万元)"]),
    ({"budget": 12345.5}, "rich", ["Budget: CNY 12,345.5 (at least CNY 10,000)"],
     ["预算:1.23 万元(至少 1 万元)"]),
    ({"distance": 850}, "far", ["Distance: 850 km (over 500 km)"],
     ["距离:850 公里(超过 500 公里)"]),
    ({"visits": 3}, "regular", ["Visits: 3"], ["到访次数:3"]),
    ({"role": "owner"}, "boss", ["Role: owner"], ["职位:老板"]),
    ({"role": "owner"}, "not_staff", ["Role: owner"], ["职位:老板"]),
    ({"vip": True}, "big", ["VIP: yes"], ["大客户:是"]),
    ({"decides": True}, "decider", ["The contact decides"], ["联系人能拍板"]),
    ({"pains": ["slow", "price"]}, "pained", ["Pain points: 2 (at least 2)"],
     ["痛点共 2 项(至少 2 项)"]),
    ({"pains": ["slow"]}, "some_pain", ["Pain points: 1"], ["痛点共 1 项"]),
    ({"seen": "2025-09-01"}, "stale", ["Last contact: 122 days ago (over 90 days)"],
     ["距最近联系日期已 122 天(超过 90 天)"]),
    ({"signed": "2025-03-04"}, "late", ["Signed: 4 Mar 2025 (before 1 Jun 2025)"],
     ["签约日期:2025年3月4日(早于 2025年6月1日)"]),
    ({"pains": ["price"]}, "pricey", ["Pain points include price"], ["痛点包含price"]),
    ({"email": "jo@acme.com"}, "work_mail", ["Email matches the pattern @acme[.]com$"],
     ["邮箱符合格式 @acme[.]com$"]),
    # a known(x) guard is not evidence where a test on x decided
    ({"role": "owner"}, "guarded", ["Role: owner"], ["职位:老板"]),
    ({}, "guarded", ["Role is not known"], ["职位未知"]),
    # a value that would round onto the figure it was compared with is shown exactly
    ({"distance": 500.004}, "far", ["Distance: 500.004 km (over 500 km)"],
     ["距离:500.004 公里(超过 500 公里)"]),
    ({"budget": 10000.001}, "rich", ["Budget: CNY 10,000.001 (at least CNY 10,000)"],
     ["预算:10,000.001 元(至少 1 万元)"]),
    # 万 carries to 亿 and 万亿 when the rounded figure reaches them
    ({"budget": 99_999_999}, "rich", ["Budget: CNY 99,999,999 (at least CNY 10,000)"],
     ["预算:1 亿元(至少 1 万元)"]),
    ({"budget": 1e12}, "rich", ["Budget: CNY 1,000,000,000,000 (at least CNY 10,000)"],
     ["预算:1 万亿元(至少 1 万元)"]),
]


def _fullwidth(text: str) -> str:
    """Chinese punctuation as qualify writes it: full-width colon and brackets."""
    return text.translate(str.maketrans({":": "\uff1a", "(": "\uff08", ")": "\uff09"}))


@pytest.mark.parametrize(("lead", "trait", "en", "zh"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_evidence_in_words(engine: Engine, lead: dict[str, Any], trait: str, en: list[str],
                           zh: list[str]) -> None:
    """Each kind of test reads as a person would say it, in both languages."""
    assert texts(engine, lead, "en")[trait] == en
    assert texts(engine, lead, "zh")[trait] == [_fullwidth(z) for z in zh]


def test_a_rule_may_word_its_own_evidence(engine: Engine) -> None:
    """``evidence:`` on a rule replaces its line's words; the data keeps each item's own."""
    lead = {"lead_id": "L", "seen": "2025-11-01"}
    en = engine.score(lead, as_of=AS_OF, locale="en")
    assert "-5 Quiet — quiet for 61 days, since 1 Nov 2025" in en.explanation
    zh = engine.score(lead, as_of=AS_OF, locale="zh")
    # the template's own punctuation is kept
    assert "-5 沉寂——已 61 天没有联系(上次:2025年11月1日)" in zh.explanation
    quiet = next(t for t in en.traits if t["id"] == "own_words")
    assert quiet["evidence"][0]["text"] == "Last contact: 61 days ago (over 30 days)"


def test_a_reason_names_values_by_their_labels(engine: Engine) -> None:
    """A field in a reason template reads as its value's label; a missing one as unknown."""
    assert engine.score({"lead_id": "L", "role": "staff"}, as_of=AS_OF,
                        locale="zh").next_step["reason"] == "职位普通员工"
    assert engine.score({"lead_id": "L"}, as_of=AS_OF).next_step["reason"] == "role not known"


@pytest.mark.parametrize(("change", "code", "where"), [
    (("evidence: {en: \"quiet for", "evidence: {en: \"quiet for {budget}"), "bad-template",
     "traits[14].evidence.en"),
    (("      false: {en: the contact does not decide, zh: 联系人不能拍板}\n", ""), "bad-value",
     "fields.decides.values"),
    (("visits: {type: integer,", "visits: {type: integer, unit: currency,"), None, None),
    (("vip: {type: boolean,", "vip: {type: boolean, unit: {en: km},"), "bad-value",
     "fields.vip.unit"),
])
def test_wording_mistakes_are_located(change: tuple[str, str], code: str | None,
                                      where: str | None) -> None:
    """A template naming a value its rule does not read, half a yes/no phrasing, or a unit
    on a non-number: an error at the line, with a hint; a unit on an integer is fine."""
    text = RULES.replace(*change)
    assert text != RULES
    if code is None:
        load_rulebook_text(text, "words.yaml")
        return
    with pytest.raises(RulebaseError) as e:
        load_rulebook_text(text, "words.yaml")
    problem = next(p for p in e.value.problems if p.code == code)
    assert problem.line > 0 and problem.hint, problem


# ----------------------------------------------------------------------------- the sweep

_CODE = re.compile(r"==|!=|>=|<=|\bin \[|\"|(?<![A-Za-z])'|'(?![A-Za-z])|\btrue\b|\bfalse\b"
                   r"|\b(?:known|count|days_since|contains|matches)\(")


def _speaks_code(rb: Rulebook, line: str, locale: str) -> list[str]:
    found = _CODE.findall(line)
    found += [f for f in rb.fields if "_" in f and f in line]  # a field's id
    if locale == "zh":
        codes = {v for f in rb.fields.values() for v in f.values}
        found += [w for w in re.findall(r"[A-Za-z_]+", line) if w in codes]
    return found


def test_no_line_or_reason_speaks_code() -> None:
    """On generated leads, over several days and both locales: explanation lines, next-step
    reasons, weakest-factor reasons and the passed-over lines of --explain carry no
    operator, quote, true/false, function name, field id, or (zh) enum code."""
    rb = load_rulebook(default_rules_path())
    leads = list(synthetic.generate(1500, seed=5, bad_rate=0))
    seen = 0
    with Engine(rb) as engine:
        for i, lead in enumerate(leads):
            loc = ("en", "zh")[i % 2]
            as_of = AS_OF + dt.timedelta(days=45 * (i % 4))
            v = engine.score(lead, as_of=as_of, locale=loc)
            d = engine.decide(lead, as_of)
            lines = [*v.explanation[1:], v.next_step["reason"],
                     *(e["text"] for q in v.qualifiers.values() for e in q["evidence"]),
                     *passed_over(rb, d.stage2_fact, d.lead, v.next_step["id"], loc)]
            for line in lines:
                assert not _speaks_code(rb, line, loc), (line, _speaks_code(rb, line, loc))
                seen += 1
    assert seen > 20_000


def test_the_default_rule_base_words_every_value() -> None:
    """Every enum value and yes/no field of the default rule base has words in both
    languages, and no Chinese label is the English code."""
    rb = load_rulebook(default_rules_path())
    for f in rb.fields.values():
        if f.type == "enum":
            assert set(f.value_labels) == set(f.values), f.name
        if f.type == "boolean":
            assert set(f.value_labels) == {True, False}, f.name
        for code, label in f.value_labels.items():
            assert label["zh"] != str(code) and label["en"], (f.name, code)
    w = Words(rb, "zh")
    assert w.value("payment_history", "defaulted") == "违约"
    assert w.value("distance_km", 18) == "18 公里"
    assert Words(rb, "en").value("budget", 80000) == "USD 80,000"


def test_a_value_that_failed_its_test_says_what_it_is_not() -> None:
    """An unmet qualifier's value reads with what it was not (``staff (not owner)``); a
    value that passed reads alone (the trait cases above)."""
    text = RULES.replace('q: {label: {en: Q, zh: 条件}, when: "true"}',
                         'q: {label: {en: Q, zh: 条件}, when: \'role == "owner"\'}')
    assert text != RULES
    with Engine(load_rulebook_text(text, "words.yaml")) as engine:
        lead = {"lead_id": "L", "role": "staff"}
        en = engine.score(lead, as_of=AS_OF, locale="en").qualifiers["q"]["evidence"]
        zh = engine.score(lead, as_of=AS_OF, locale="zh").qualifiers["q"]["evidence"]
    assert [e["text"] for e in en] == ["Role: staff (not owner)"]
    assert [e["text"] for e in zh] == [_fullwidth("职位:普通员工(不是老板)")]


# ----------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("locale", ["en", "zh"])
def test_no_value_reads_as_its_threshold(locale: str) -> None:
    """Over values just either side of many thresholds, scaled from 0.0001 to 10^12, a
    comparison's value and its threshold never read the same unless they are equal."""
    rb = load_rulebook_text(RULES, "words.yaml")
    w = Words(rb, locale)
    trait = next(t for t in rb.traits if t.id == "rich")
    ref = next(iter(trait.expr.refs()))
    for scale in (1e-4, 1e-2, 1, 1e3, 1e4, 1e6, 1e8, 1e12):
        for limit in (scale, 2.5 * scale, 9.99 * scale):
            for value in (limit * (1 - 1e-7), limit * (1 - 1e-4), limit * (1 + 1e-4),
                          limit + 0.001, limit - 0.001):
                for op in (">=", "<", ">", "<="):
                    text = w._measured("Budget", ref, op, limit)(value)
                    shown = text.split(":" if locale == "en" else "：", 1)[1]
                    figure, _, against = shown.partition(" (" if locale == "en" else "（")
                    assert figure.strip() not in against, (value, limit, text)


def test_small_numbers_keep_their_digits() -> None:
    """A fraction reads to its first significant digits (0.0002, not 0; -0.004, not -0)."""
    w = Words(load_rulebook_text(RULES, "words.yaml"), "en")
    assert [w.number(x) for x in (0.0002, -0.004, 0.5, 2.345, 1e-7, 12345.678)] == [
        "0.0002", "-0.004", "0.5", "2.35", "0.0000001", "12,345.68"]


def test_states_and_traits_are_never_negated_twice() -> None:
    """``qualifier.need != "unmet"`` is "met or not known yet", ``not trait.x`` is "does not
    apply", and a negated group in Chinese has one pair of brackets."""
    text = RULES.replace("next_steps:\n", """next_steps:
  - id: odd
    when: 'qualifier.q != "unmet" and not trait.rich and not (vip and decides)'
    label: {en: Odd, zh: 奇}
    reason: {en: Odd., zh: 奇。}
""")
    rb = load_rulebook_text(text, "words.yaml")
    odd = next(s for s in rb.next_steps if s.id == "odd")
    assert Words(rb, "en").condition(odd.expr) == (
        "“Q” is met or not known yet and trait “Rich” does not apply and not (VIP: yes and "
        "the contact decides)")
    assert Words(rb, "zh").condition(odd.expr) == (
        "“条件”为满足或待确认，且不具备特质“有钱”，且非（大客户：是，且联系人能拍板）")


def test_evidence_words_in_one_language_leave_the_other_alone() -> None:
    """A rule's ``evidence:`` in Chinese only: English says qualify's own words (with a
    warning that names the evidence words, not a label)."""
    text = RULES.replace('evidence: {en: "quiet for {days_since(seen)} days, since {seen}",\n'
                         '               zh:', "evidence: {zh:")
    assert text != RULES
    rb = load_rulebook_text(text, "words.yaml")
    warned = [p for p in rb.warnings if "evidence words of 'own_words'" in p.message]
    assert len(warned) == 1 and "have no 'en' text" in warned[0].message
    with Engine(rb) as e:
        lead = {"lead_id": "L", "seen": "2025-11-01"}
        en = e.score(lead, as_of=AS_OF, locale="en").explanation
        zh = e.score(lead, as_of=AS_OF, locale="zh").explanation
    assert "-5 Quiet — last contact: 61 days ago (over 30 days)" in en
    assert "-5 沉寂——已 61 天没有联系(上次:2025年11月1日)" in zh


def test_a_template_naming_a_field_its_rule_does_not_read() -> None:
    """The error says the field is real but unread, with the names the rule may use."""
    text = RULES.replace('evidence: {en: "quiet for', 'evidence: {en: "{budget} quiet for')
    with pytest.raises(RulebaseError) as e:
        load_rulebook_text(text, "words.yaml")
    problem = next(p for p in e.value.problems if p.code == "bad-template")
    assert problem.message == "'{budget}' is a field, but this rule's condition does not read it"
    assert problem.hint.startswith("name {evidence} or a value the rule's condition reads: ")


@pytest.mark.parametrize(("change", "message"), [
    (("currency: CNY", "currency: dollars"), "currency 'dollars' is not an ISO 4217 code"),
    (("currency: CNY", "currency: usd"), "currency 'usd' is not an ISO 4217 code"),
    (("currency: CNY\n", ""), "'budget' is an amount, but the rule base names no currency"),
])
def test_a_currency_people_cannot_read_is_warned(change: tuple[str, str], message: str) -> None:
    """Amounts read ``CNY 10,000`` / ``1 万元``: a currency that is no ISO code (``1 万
    dollars``), or none for an amount, is a located warning."""
    text = RULES.replace(*change)
    assert text != RULES
    rb = load_rulebook_text(text, "words.yaml")
    warned = [p for p in rb.warnings if p.code == "bad-currency"]
    assert [p.message for p in warned] == [message]
    assert warned[0].line > 0 and warned[0].hint
